"""Profiling: the ort backend on real data, the estimate backend, AI Hub payloads through the fake, the gate."""

import csv
import gc
import json
import re
from pathlib import Path

import jsonschema
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from edgefusion_export.errors import UserError
from edgefusion_export.graphs import LayerCost, cpu_layers, layer_costs, load_shaped, static_shapes
from edgefusion_export.profile.estimate import EstimateConstants, LatencyModel, LayerArrays, layer_times_ms
from edgefusion_export.profile.model import SCHEMA_FILE
from edgefusion_export.runtime.sessions import htp_session
from edgefusion_export.targets import aihub, snapdragon
from edgefusion_export.targets.chipsets import chipset

from .conftest import run_cli
from .fake_qai_hub import FakeHub
from .test_bad_input import assert_clean_error


def read_profile(folder):
    data = json.loads((folder / "profile.json").read_text())
    jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text()))
    return data


def test_ort_profile_blocks_add_up_and_files_are_written(tiny_bundle, tmp_path):
    result = run_cli("profile", tiny_bundle, "--backend", "ort", "--runs", 2, "-o", tmp_path)
    assert result.exit_code == 0, result.output
    data = read_profile(tmp_path)
    assert set(data["components"]) == {"text_encoder", "unet", "vae_decoder"}
    for component, summary in data["components"].items():
        assert summary["total_ms"] > 0
        assert abs(sum(data["blocks"][component].values()) - summary["total_ms"]) < 1e-3 * max(1, summary["total_ms"])
        rows = [row for row in data["rows"] if row["component"] == component]
        assert abs(sum(row["time_ms"] for row in rows) - summary["total_ms"]) < 1e-3 * max(1, summary["total_ms"])
    assert any(block.startswith("down_blocks.0.attentions.0") for block in data["blocks"]["unet"])
    assert any(block.startswith("encoder.layers.") for block in data["blocks"]["text_encoder"])
    unet = data["components"]["unet"]
    expected = sum(s["total_ms"] * s["calls_per_image"] for s in data["components"].values())
    assert unet["calls_per_image"] == 2 and abs(data["per_image_ms"] - expected) < 1e-2
    with open(tmp_path / "profile.csv") as handle:
        assert len(list(csv.DictReader(handle))) == len(data["rows"])
    page = (tmp_path / "profile.html").read_text()
    assert page.count("data:image/png;base64,") >= 5 and "http" not in page.replace("http-equiv", "")
    assert "per image" in result.stdout


def test_estimate_backend_on_a_snapdragon_bundle(snapdragon_bundle, tmp_path):
    result = run_cli("profile", snapdragon_bundle, "--backend", "estimate", "-o", tmp_path)
    assert result.exit_code == 0, result.output
    data = read_profile(tmp_path)
    assert "Snapdragon 8 Gen 3" in data["device"]
    assert {row["compute_unit"] for row in data["rows"]} == {"NPU"}
    convs = [row for row in data["rows"] if row["op_type"] == "Conv"]
    assert convs and all(row["macs"] > 0 for row in convs)
    slower = run_cli("profile", snapdragon_bundle, "--backend", "estimate", "--chipset", "snapdragon-8-gen-1", "-o", tmp_path / "g1")
    assert slower.exit_code == 0
    assert read_profile(tmp_path / "g1")["per_image_ms"] > data["per_image_ms"]


def test_regression_gate_both_ways(tiny_bundle, tmp_path):
    assert run_cli("profile", tiny_bundle, "--backend", "estimate", "-o", tmp_path / "base").exit_code == 0
    same = run_cli("profile", tiny_bundle, "--backend", "estimate", "-o", tmp_path / "now",
                   "--baseline", tmp_path / "base" / "profile.json", "--max-regression", "5%")
    assert same.exit_code == 0 and "no regression" in same.stderr
    baseline = read_profile(tmp_path / "base")
    baseline["components"]["unet"]["total_ms"] *= 0.5
    for row in baseline["rows"]:
        if row["component"] == "unet" and row["block"].startswith("up_blocks.1"):
            row["time_ms"] *= 0.5
    baseline["rows"][0]["compute_unit"] = "NPU"
    (tmp_path / "faster.json").write_text(json.dumps(baseline))
    ort_now = run_cli("profile", tiny_bundle, "--backend", "ort", "--runs", 1, "-o", tmp_path / "cpu")
    assert ort_now.exit_code == 0
    slower = run_cli("profile", tiny_bundle, "--backend", "estimate", "-o", tmp_path / "now2",
                     "--baseline", tmp_path / "faster.json", "--max-regression", "5%")
    assert_clean_error(slower, "regression", after_progress=True)
    assert "unet:up_blocks.1" in slower.stderr and "+100.0%" in slower.stderr
    cpu_baseline = read_profile(tmp_path / "now")
    for row in cpu_baseline["rows"]:
        row["time_ms"] *= 100  # far slower baseline: only the compute-unit move can fail the gate
    cpu_baseline["components"] = {k: {**v, "total_ms": v["total_ms"] * 100} for k, v in cpu_baseline["components"].items()}
    (tmp_path / "npu.json").write_text(json.dumps(cpu_baseline))
    moved = run_cli("profile", tiny_bundle, "--backend", "ort", "--runs", 1, "-o", tmp_path / "cpu2",
                    "--baseline", tmp_path / "npu.json", "--max-regression", "0.05")
    assert_clean_error(moved, "regression", after_progress=True)
    assert "moved off the NPU" in moved.stderr


def test_bad_profile_options(tiny_bundle, tmp_path):
    assert_clean_error(run_cli("profile", tiny_bundle, "--max-regression", "lots", "-o", tmp_path), "--max-regression")
    (tmp_path / "bad.json").write_text("{}")
    assert_clean_error(run_cli("profile", tiny_bundle, "--baseline", tmp_path / "bad.json", "-o", tmp_path / "x"),
                       "not a profile.json")


def client_profile(times_us: list[int], layers: list[tuple[str, str, str, int]], peak_range: tuple[int, int]) -> dict:
    """A profile as the installed qai-hub client writes it: its protobuf, converted by the client's own function."""
    import qai_hub.public_api_pb2 as api_pb
    from qai_hub.client import _profile_pb_to_python_dict

    detail = api_pb.ProfileDetail(major_version=1, minor_version=8, execution_time=min(times_us), warm_load_time=250000,
                                  cold_load_time=900000, after_execution_peak_memory=999 * 2**20)
    detail.all_execution_times.extend(times_us)
    detail.execution_memory.peak.lower, detail.execution_memory.peak.upper = peak_range
    for name, op, unit, time_us in layers:
        detail.layer_details.append(api_pb.LayerDetail(name=name, layer_type_name=op, execution_time=time_us,
                                                       compute_unit=api_pb.ComputeUnit.Value(f"COMPUTE_UNIT_{unit}")))
    return _profile_pb_to_python_dict(detail)


UNET_LAYERS = [("unet.down_blocks.0.resnets.0.conv1/Conv_12", "Conv", "NPU", 1500),
               ("unet.up_blocks.2.attentions.1/MatMul_900", "MatMul", "CPU", 700),
               ("unet.up_blocks.2.attentions.1/MatMul_900", "MatMul", "NPU", 300), ("", "Add", "NPU", 20)]


def test_aihub_profile_reads_what_the_client_writes(monkeypatch, snapdragon_bundle, tmp_path):
    hub = FakeHub().install(monkeypatch)
    hub.payloads_by_component = {"unet": client_profile([90000, 80000], UNET_LAYERS, (10 * 2**20, 300 * 2**20)),
                                 "text_encoder": client_profile([2500, 2600], [], (2**20, 40 * 2**20)),
                                 "vae_decoder": client_profile([203000], [("conv_in", "Conv", "NPU", 900)], (0, 2**30))}
    monkeypatch.setenv(aihub.TOKEN_ENV, "t")
    result = run_cli("profile", snapdragon_bundle, "--backend", "aihub", "-o", tmp_path, "--cache-dir", tmp_path / "c")
    assert result.exit_code == 0, result.output
    data = read_profile(tmp_path)
    assert data["device"] == "Samsung Galaxy S24 (Family)"
    unet = data["components"]["unet"]
    # the minimum over runs, as AI Hub reports it; the upper end of the peak range, not the deprecated field
    assert unet["total_ms"] == 80.0 and unet["load_ms"] == 250.0 and unet["peak_memory_mb"] == 300.0
    assert unet["job_id"] in hub.jobs
    assert data["components"]["text_encoder"]["total_ms"] == 2.5
    rows = {row["name"]: row for row in data["rows"] if row["component"] == "unet"}
    assert rows["unet.down_blocks.0.resnets.0.conv1/Conv_12"]["block"] == "down_blocks.0.resnets.0"
    assert rows["unet.up_blocks.2.attentions.1/MatMul_900"]["compute_unit"] == "CPU"
    assert rows["unet.up_blocks.2.attentions.1/MatMul_900#2"]["time_ms"] == 0.3  # a repeated name stays its own row
    assert rows["layer_3"]["op_type"] == "Add"
    assert abs(data["per_image_ms"] - (2.5 + 2 * 80.0 + 203.0)) < 1e-6
    assert all(call["options"].startswith("--max_profiler_iterations") for call in hub.submitted)


def test_a_failed_aihub_profile_job_is_one_line(monkeypatch, snapdragon_bundle, tmp_path):
    hub = FakeHub().install(monkeypatch)
    hub.payloads_by_component = {"unet": {}, "text_encoder": client_profile([2500], [], (0, 1)), "vae_decoder": {}}
    monkeypatch.setenv(aihub.TOKEN_ENV, "t")
    assert_clean_error(run_cli("profile", snapdragon_bundle, "--backend", "aihub", "-o", tmp_path / "p", "--cache-dir",
                               tmp_path / "c"), "returned no profile, so it failed on the device")
    assert not (tmp_path / "p").exists()


def test_aihub_profile_download_without_network_is_one_line(monkeypatch, snapdragon_bundle, tmp_path):
    hub = FakeHub().install(monkeypatch)
    hub.payloads_by_component = {component: client_profile([1000], [], (0, 1)) for component in ("unet", "text_encoder", "vae_decoder")}
    monkeypatch.setenv(aihub.TOKEN_ENV, "t")
    original = hub.Client

    def client_whose_downloads_fail(*args, **kwargs):
        hub.network_down = False
        client = original(*args, **kwargs)
        submit = client.submit_profile_job

        def submit_then_lose_the_network(*a, **k):
            job = submit(*a, **k)
            hub.network_down = True
            return job

        client.submit_profile_job = submit_then_lose_the_network
        return client

    hub.Client = client_whose_downloads_fail
    assert_clean_error(run_cli("profile", snapdragon_bundle, "--backend", "aihub", "-o", tmp_path / "p", "--cache-dir",
                               tmp_path / "c"), "AI Hub download of the profile of job p0000001 failed", "re-run")


@pytest.fixture(scope="module")
def unet_layers(snapdragon_bundle, tmp_path_factory):
    """The bundle's W8A16 UNet on the 8 Gen 3: its graph, the estimate's layers and the layers QNN ran in HTP
    emulation (QNN's own names: module scopes kept, suffixes added, layout conversions inserted)."""
    from edgefusion_export.bundle.manifest import load_bundle
    from edgefusion_export.profile.emulator_backend import profile_component
    from edgefusion_export.profile.estimate import estimate_component
    from edgefusion_export.runtime.pipeline import compiled_entry

    bundle, chip = load_bundle(snapdragon_bundle), chipset("snapdragon-8-gen-3")
    graph = bundle.component_path("unet")
    compiled = bundle.path(compiled_entry(bundle.manifest, "unet", chip.name)["file"])
    emulated = profile_component(compiled, "unet", chip, tmp_path_factory.mktemp("emulated"))
    return graph, estimate_component(graph, "unet", "w8a16", chip), emulated


def device_layers_benchmark(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    import device_layers

    return device_layers


def test_device_layers_are_joined_to_the_estimates_by_the_names_qnn_gives_them(monkeypatch, unet_layers):
    _, estimated, emulated = unet_layers
    joined = device_layers_benchmark(monkeypatch).compare_layers(emulated, estimated)
    by_type = joined["by_op_type"]
    for op_type in ("Conv", "MatMul", "Gemm"):  # QNN keeps every MAC layer, under its ONNX name and a suffix
        assert by_type[op_type]["estimate_only_layers"] == 0
        assert by_type[op_type]["device_layers"] >= sum(row.op_type == op_type for row in estimated)
    # the layout conversions QNN inserts (`Transpose_token_<n>`) are not the estimate's unscoped `Transpose`
    assert by_type["device only QNN:Transpose"]["device_layers"] >= 1
    assert joined["matched_device_share"] >= 0.97  # 0.99 measured: QNN's own reshapes and casts are the rest
    assert sum(entry["device_ms"] for entry in by_type.values()) == pytest.approx(sum(r.time_ms for r in emulated), rel=1e-3)
    assert sum(entry["estimate_ms"] for entry in by_type.values()) == pytest.approx(sum(r.time_ms for r in estimated), rel=1e-3)


def test_device_layers_compile_for_a_phone_and_read_the_profile_it_returns(monkeypatch, unet_layers, tmp_path):
    """The benchmark's phone path: the graph compiled here, then run as its commands run it on the phone (the same QNN
    EP options, in HTP emulation; a warm-up and a run append to one profile), and the fetched profile read back."""
    from edgefusion_export.profile.ort_backend import session_feeds

    benchmark = device_layers_benchmark(monkeypatch)
    graph, estimated, _ = unet_layers
    chip, folder = chipset("snapdragon-8-gen-3"), tmp_path / "unet.w8a16"
    first = benchmark.phone_layers(graph, "unet.w8a16", "w8a16", chip, folder)
    assert first["estimate_ms"] == pytest.approx(sum(row.time_ms for row in estimated), abs=1e-3)
    push, run, pull = first["run_on_phone"]
    compiled = folder / re.search(r"(\S+\.onnx)'$", run).group(1).rsplit("/", 1)[1]
    assert compiled.is_file() and push == f"adb push {folder} {benchmark.PHONE_FOLDER}/"
    options = dict(pair.split("|") for pair in re.search(r'-i "([^"]+)"', run).group(1).split())
    assert options.pop("backend_path") == "libQnnHtp.so" and options["profiling_level"] == "detailed"
    assert pull == f"adb pull {options['profiling_file_path']} {folder / 'profile.csv'}"
    session = htp_session(compiled, chip.htp_target, extra={**options, "profiling_file_path": str(folder / "profile.csv")})
    for _ in range(2):
        session.run(None, session_feeds(session))
    del session
    gc.collect()
    profiled_ops = len(re.findall(r":OpId_\d+ \(cycles\)", (folder / "profile.csv").read_text()))
    second = benchmark.phone_layers(graph, "unet.w8a16", "w8a16", chip, folder)
    assert "run_on_phone" not in second and second["estimate_ms"] == first["estimate_ms"]
    by_type = second["by_op_type"]
    assert 2 * sum(entry["device_layers"] for entry in by_type.values()) == profiled_ops  # each op once, both runs read
    assert second["device_ms"] == pytest.approx(sum(entry["device_ms"] for entry in by_type.values()), abs=1e-3)
    assert by_type["Conv"]["estimate_only_layers"] == 0 and second["matched_device_share"] >= 0.97
    (folder / "profile.csv").write_text("")  # a run that failed on the phone
    with pytest.raises(UserError, match="holds no per-op cycles; delete it and run"):
        benchmark.phone_layers(graph, "unet.w8a16", "w8a16", chip, folder)


def test_device_layers_compile_and_profile_on_ai_hub_and_resume(monkeypatch, unet_layers, tmp_path):
    """The benchmark's AI Hub path through the fake: the profile holds the emulated layers, named as QNN names
    them, in the format the installed client writes."""
    from edgefusion_export.profile.estimate import estimate_model

    benchmark = device_layers_benchmark(monkeypatch)
    graph, _, emulated = unet_layers
    hub = FakeHub().install(monkeypatch)
    layers = [(row.name, row.op_type, "NPU", round(row.time_ms * 1000)) for row in emulated]
    hub.payloads_by_component = {"unet.w8a16": client_profile([9000, 8000, 8500], layers, (0, 2**20))}
    chip = chipset("snapdragon-8-gen-3")
    ledger = aihub.JobLedger(tmp_path / "jobs.json")
    result = benchmark.profile_graph(hub, hub.Client(), ledger, graph, "unet.w8a16", "w8a16", chip, tmp_path / "unet")
    compile_call, profile_call = hub.submitted
    assert "--target_runtime qnn_context_binary" in compile_call["options"]
    assert compile_call["device"].name == chip.aihub_device == profile_call["device"].name
    assert Path(profile_call["model"]).parent == tmp_path / "unet" and profile_call["model"].endswith(".bin")
    assert result["device_ms"] == 8.0  # the minimum over runs
    assert result["estimate_ms"] == pytest.approx(estimate_model(graph, "w8a16", chip).total_ms, abs=1e-4)
    device_total = sum(entry["device_ms"] for entry in result["by_op_type"].values())
    assert device_total == pytest.approx(sum(layer[3] for layer in layers) / 1000, rel=1e-3)
    assert result["by_op_type"]["Conv"]["estimate_only_layers"] == 0 and result["matched_device_share"] >= 0.97
    again = benchmark.profile_graph(hub, hub.Client(), aihub.JobLedger(tmp_path / "jobs.json"), graph, "unet.w8a16",
                                    "w8a16", chip, tmp_path / "unet")
    assert len(hub.submitted) == 2 and hub.looked_up == ["j0000001", "p0000002"]  # resumed, not resubmitted
    assert again["by_op_type"] == result["by_op_type"]


def test_estimate_counts_macs_by_kind_and_takes_the_slower_of_compute_and_memory(tmp_path):
    """Exact figures on a hand-made graph: a 3x3 Conv 8->16 on 10x10 with a ReLU (fused into it), a depthwise 3x3
    Conv, an Add, a Sigmoid and a Mul (one elementwise chain: one dispatch), a MatMul [1,100,16] x [16,32], a MatMul of two activations,
    a Softmax and a 2x2 stride-2 ConvTranspose 16->4."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((16, 8, 3, 3)).astype(np.float32), "w"),
               numpy_helper.from_array(rng.standard_normal((16, 1, 3, 3)).astype(np.float32), "dw"),
               numpy_helper.from_array(rng.standard_normal((16, 32)).astype(np.float32), "m"),
               numpy_helper.from_array(rng.standard_normal((16, 4, 2, 2)).astype(np.float32), "t"),
               numpy_helper.from_array(np.array([1, 100, 16], np.int64), "shape"),
               numpy_helper.from_array(np.array([1, 16, 100], np.int64), "shape_t")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["cr"], name="relu"),
             helper.make_node("Conv", ["cr", "dw"], ["d"], pads=[1, 1, 1, 1], group=16, name="depthwise"),
             helper.make_node("Add", ["d", "d"], ["d2"], name="double"),
             helper.make_node("Sigmoid", ["d2"], ["s"], name="sigmoid"),
             helper.make_node("Mul", ["s", "s"], ["s2"], name="square"),
             helper.make_node("Reshape", ["s2", "shape"], ["r"], name="reshape"),
             helper.make_node("MatMul", ["r", "m"], ["y"], name="matmul"),
             helper.make_node("Reshape", ["s2", "shape_t"], ["rt"], name="reshape_t"),
             helper.make_node("MatMul", ["r", "rt"], ["scores"], name="attention"),
             helper.make_node("Softmax", ["scores"], ["p"], axis=-1, name="softmax"),
             helper.make_node("ConvTranspose", ["s2", "t"], ["u"], strides=[2, 2], name="up")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 10, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 100, 32]),
                               helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 100, 100]),
                               helper.make_tensor_value_info("u", TensorProto.FLOAT, [1, 4, 20, 20])], weights)
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    costs = layer_costs(load_shaped(path), "fp16", vtcm_bytes=0)
    assert [(c.name, c.kind, c.macs, c.dispatches) for c in costs] == [
        ("conv", "dense", 16 * 100 * 8 * 9, 1), ("relu", "fused", 0, 0),
        ("depthwise", "grouped", 16 * 100 * 9, 1), ("double", "vector", 0, 1), ("sigmoid", "vector", 0, 0),
        ("square", "vector", 0, 0), ("matmul", "dense", 100 * 32 * 16, 1),
        ("attention", "dynamic", 100 * 100 * 16, 1), ("softmax", "softmax", 0, 1),
        ("up", "dense", 16 * 100 * 4 * 4, 1)]
    conv, up = costs[0], costs[-1]
    assert costs[4].elements == 1600 and up.elements == 4 * 400
    assert conv.weight_bytes == 16 * 8 * 3 * 3 * 2 and conv.activation_bytes == (8 + 16) * 100 * 2
    # what HTP emulation's time follows: image values in the tiled layout (16x10x10 -> 32x16x12, 4x20x20 -> 32x24x20)
    # and the values of token and score tensors
    image = 32 * 16 * 12
    assert [(c.tiled_elements, c.untiled_elements) for c in costs] == [(image, 0)] * 6 + [
        (0, 100 * 32), (0, 100 * 100), (0, 100 * 100), (32 * 24 * 20, 0)]
    every = snapdragon.EmulationRate(load_s=1.0, s_per_gmac=2.0, s_per_gvalue=3.0, values="every value")
    per_call = (2.0 * sum(c.macs for c in costs) + 3.0 * (6 * image + 32 * 24 * 20 + 3200 + 20000)) / 1e9
    assert every.seconds(costs, calls=2) == pytest.approx(1.0 + 2 * per_call)
    # FP16 emulation charges the values of exponentials and norms: here the sigmoid's and the softmax's
    rate = snapdragon.EmulationRate(load_s=1.0, s_per_gmac=2.0, s_per_gvalue=3.0, values="transcendental values")
    per_call = (2.0 * sum(c.macs for c in costs) + 3.0 * (image + 10000)) / 1e9
    assert rate.seconds(costs, calls=2) == pytest.approx(1.0 + 2 * per_call)

    chip = chipset("snapdragon-8-gen-3")
    constants = EstimateConstants(dense_efficiency=0.5, dynamic_efficiency=0.2, grouped_efficiency=0.25,
                                  vector_gbps=100.0, softmax_gbps=10.0, memory_efficiency=1.0, activation_spill=1.0,
                                  op_overhead_us=3.0, io_ns_per_value=2.0)
    model = LatencyModel(chip, "float", constants, None)
    peak = chip.npu_int8_tops * 1e12 / 2 / 4  # fp16 at a quarter of the int8 MAC rate
    layers = [LayerCost("a", "Conv", macs=10**9, weight_bytes=0, activation_bytes=0, kind="dense"),
              LayerCost("b", "Conv", macs=10**9, weight_bytes=0, activation_bytes=0, kind="grouped"),
              LayerCost("c", "Conv", macs=0, weight_bytes=10**9, activation_bytes=0, kind="dense"),
              LayerCost("d", "Add", macs=0, weight_bytes=0, activation_bytes=10**8, elements=10**8, dispatches=0),
              LayerCost("e", "MatMul", macs=10**9, weight_bytes=10**9, activation_bytes=0, kind="dynamic"),
              LayerCost("f", "Softmax", macs=0, weight_bytes=0, activation_bytes=0, kind="softmax", elements=10**8),
              LayerCost("g", "Relu", macs=10**9, weight_bytes=10**9, activation_bytes=10**9, kind="fused", dispatches=0)]
    compute_ms, memory_ms = 1e9 / (peak * 0.5) * 1e3, 1e9 / (chip.memory_bandwidth_gbps * 1e9) * 1e3
    expected = [compute_ms + 0.003, 2 * compute_ms + 0.003, memory_ms + 0.003,
                max(2e8 / 100e9 * 1e3, 1e8 / (chip.memory_bandwidth_gbps * 1e9) * 1e3),
                max(2.5 * compute_ms, memory_ms) + 0.003, 2e8 / 10e9 * 1e3 + 0.003, 0.0, 1000 * 2e-9 * 1e3]
    assert layer_times_ms(LayerArrays.of(layers, "fp16", io_values=1000), model).tolist() == pytest.approx(expected)


def test_a_grouped_convolution_runs_with_its_groups_padded_to_a_channel_block(tmp_path):
    """QNN's HTP costs a 4-group 3x3 Conv of 32 channels as the dense one and 8 groups of 32 channels at an eighth
    of it (benchmarks/fused_activations.py, "grouped convolutions"): a grouped Conv that is not depthwise counts
    each group's input channels padded to 32 at the dense rate; a depthwise Conv keeps its own rate."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
               for name, shape in (("g4", (32, 8, 3, 3)), ("dw", (32, 1, 3, 3)), ("widen", (256, 32, 1, 1)),
                                   ("g8", (256, 32, 3, 3)))]
    nodes = [helper.make_node("Conv", ["x", "g4"], ["a"], pads=[1, 1, 1, 1], group=4, name="4 groups of 8"),
             helper.make_node("Conv", ["a", "dw"], ["b"], pads=[1, 1, 1, 1], group=32, name="depthwise"),
             helper.make_node("Conv", ["b", "widen"], ["c"], name="widen"),
             helper.make_node("Conv", ["c", "g8"], ["d"], pads=[1, 1, 1, 1], group=8, name="8 groups of 32")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 10, 10])],
                              [helper.make_tensor_value_info("d", TensorProto.FLOAT, [1, 256, 10, 10])], weights)
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    costs = layer_costs(load_shaped(path), "fp16", vtcm_bytes=0)
    assert [(c.name, c.kind, c.macs, c.weight_bytes) for c in costs] == [
        ("4 groups of 8", "dense", 32 * 100 * 32 * 9, 32 * 8 * 9 * 2),
        ("depthwise", "grouped", 32 * 100 * 9, 32 * 9 * 2), ("widen", "dense", 256 * 100 * 32, 256 * 32 * 2),
        ("8 groups of 32", "dense", 256 * 100 * 32 * 9, 256 * 32 * 9 * 2)]


def test_recurrent_layers_and_einsum_count_their_macs(tmp_path):
    """An LSTM (bidirectional, 5 steps), a GRU (batch first) and an RNN count their gates' MACs at every step and run as
    one op per step and direction, as onnxruntime's QNN provider unrolls an LSTM and a GRU (32 Lstm ops for a 32-step
    LSTM); it has no RNN builder, which the output says;
    a two-operand Einsum counts a MAC per output value and summed index, with a weight ("dense") or without, its
    output written or implied, indices after an ellipsis naming the last dimensions."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name) for name, shape in (
        ("lstm_w", (2, 16, 3)), ("lstm_r", (2, 16, 4)), ("lstm_b", (2, 32)), ("gru_w", (1, 12, 8)),
        ("gru_r", (1, 12, 4)), ("rnn_w", (1, 6, 4)), ("rnn_r", (1, 6, 6)), ("projection", (4, 7)))]
    nodes = [helper.make_node("LSTM", ["x", "lstm_w", "lstm_r", "lstm_b"], ["lstm"], hidden_size=4,
                              direction="bidirectional", name="lstm"),
             helper.make_node("GRU", ["sequence", "gru_w", "gru_r"], ["gru"], hidden_size=4, layout=1, name="gru"),
             helper.make_node("RNN", ["x_rnn", "rnn_w", "rnn_r"], ["rnn"], hidden_size=6, name="rnn"),
             helper.make_node("Einsum", ["gru", "projection"], ["projected"], equation="...h,hk", name="projected"),
             helper.make_node("Einsum", ["heads", "heads"], ["scores"], equation="...qd, ...kd -> ...qk", name="scores")]
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in (
        ("x", [5, 2, 3]), ("sequence", [2, 5, 8]), ("x_rnn", [3, 1, 4]), ("heads", [1, 2, 10, 8]))]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
               for name in ("lstm", "rnn", "projected", "scores")]
    path = tmp_path / "recurrent.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, weights),
                                opset_imports=[helper.make_opsetid("", 18)]), str(path))
    feeds = {value.name: np.ones([d.dim_value for d in value.type.tensor_type.shape.dim], np.float32) for value in inputs}
    ReferenceEvaluator(str(path)).run(None, feeds)  # a graph that runs (onnxruntime has no batch-first GRU)
    costs = layer_costs(load_shaped(path), "fp16", vtcm_bytes=0)
    assert [(c.name, c.kind, c.macs, c.dispatches, c.weight_bytes) for c in costs] == [
        ("lstm", "dense", 2 * 5 * 2 * 16 * (3 + 4), 2 * 5, 2 * (2 * 16 * 3 + 2 * 16 * 4 + 2 * 32)),
        ("gru", "dense", 5 * 2 * 12 * (8 + 4), 5, 2 * (12 * 8 + 12 * 4)),
        ("rnn", "dense", 3 * 1 * 6 * (4 + 6), 3, 2 * (6 * 4 + 6 * 6)),
        ("projected", "dense", 2 * 5 * 1 * 7 * 4, 1, 2 * 4 * 7),  # gru: [batch 2, steps 5, directions 1, hidden 4]
        ("scores", "dynamic", 2 * 10 * 10 * 8, 1, 0)]
    chip = chipset("snapdragon-8-gen-3")
    model = LatencyModel.of(chip, "float")
    lstm, c = costs[0], model.constants
    traffic = lstm.weight_bytes + c.activation_spill * lstm.activation_bytes
    assert layer_times_ms(LayerArrays.of([lstm], "fp16", io_values=0), model)[0] == pytest.approx(
        max(lstm.macs / (model.peak_macs_per_s * c.dense_efficiency),
            traffic / (chip.memory_bandwidth_gbps * 1e9 * c.memory_efficiency)) * 1e3 + 10 * c.op_overhead_us / 1e3)
    assert json.loads(run_cli("estimate", path, "--json").stdout)["on_cpu"] == {"Einsum": 2, "RNN": 1}
    assert "; onnxruntime's QNN provider runs 2 Einsum, 1 RNN on the CPU)" in run_cli("estimate", path).stdout


def test_the_einsum_equations_left_to_the_cpu_are_those_the_qnn_provider_refuses(tmp_path):
    """`on_cpu` names an Einsum exactly when the installed QNN provider will not build it for the HTP: each equation
    is loaded with CPU fallback off. The ones it builds are MatMuls: plain, with the second operand transposed,
    broadcast over the first, with all three transposed; any case, any spacing."""
    sizes = dict(zip("bhqkdwcijIJK", (2, 3, 5, 6, 4, 3, 4, 7, 2, 5, 4, 3)))
    equations = ["bhqk,bhkd->bhqd", "bhqd,bhkd->bhqk", "bhwc,hkc->bhwk", "bchq,bkhc->bkhq", "IJ,JK->IK",
                 "b i j, b j k -> b i k", "bij,jk->bik", "ji,jk->ik", "bhwc,hkc->bhkw", "bqhd,bkhd->bhqk",
                 "...ij,...jk->...ik", "ij,jk", "ij,ij->ij"]
    built, kept = {}, {}
    for index, equation in enumerate(equations):
        terms = equation.replace(" ", "").partition("->")[0].replace(".", "").split(",")
        inputs = [helper.make_tensor_value_info(f"in{i}", TensorProto.FLOAT, [sizes[letter] for letter in term])
                  for i, term in enumerate(terms)]
        node = helper.make_node("Einsum", [value.name for value in inputs], ["out"], equation=equation)
        graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)])
        path = tmp_path / f"einsum{index}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        kept[equation] = cpu_layers(load_shaped(path)) == {}
        try:
            htp_session(path, chipset("snapdragon-8-gen-3").htp_target, cpu_fallback=False,
                        extra={"enable_htp_fp16_precision": "1"})
            built[equation] = True
        except UserError:
            built[equation] = False
    assert kept == built
    assert sum(built.values()) == 6


@pytest.mark.parametrize("data_type", ["bool", "int32", "float32", "float16"])
def test_the_ops_left_to_the_cpu_for_their_data_type_are_those_the_qnn_provider_places_there(tmp_path, data_type):
    """`on_cpu` names an op on a data type the HTP does not take for it exactly as the installed QNN provider places
    it (a boolean mask read by GatherND, as in BERT; a Pad of integers; a cast to int64), and the same ops on the
    types it takes stay on the NPU."""
    element = helper.np_dtype_to_tensor_dtype(np.dtype(data_type))
    consts = {name: numpy_helper.from_array(np.array(value, np.int64), name) for name, value in (
        ("pads", [0, 0, 1, 0, 0, 1]), ("nd_index", [[0, 1], [1, 2]]), ("index", [0, 2]),
        ("element_index", np.zeros((2, 4, 6))), ("shape", [8, 6]))}
    ops = {"Equal": (["data"], {}), "GatherND": (["nd_index"], {}), "Gather": (["index"], {"axis": 1}),
           "ScatterElements": (["element_index", "data"], {"axis": 2}), "Pad": (["pads"], {}),
           "Reshape": (["shape"], {}), "Transpose": ([], {"perm": [0, 2, 1]}), "Concat": (["data"], {"axis": 0}),
           "Cast": ([], {"to": TensorProto.INT64}), "Cast_to_bool": ([], {"to": TensorProto.BOOL}),
           "Cast_to_float": ([], {"to": TensorProto.FLOAT})}
    if data_type != "bool":
        ops |= {"Neg": ([], {}), "Add": (["data"], {})}
    nodes = [helper.make_node("Greater", ["x", "zero"], ["positive"]),
             helper.make_node("Cast", ["positive"], ["data"], to=element),
             helper.make_node("Shape", ["x"], ["x_shape"]),  # shape arithmetic, folded before placement
             helper.make_node("Cast", ["x_shape"], ["x_shape_float"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["x_shape_float"], ["x_shape_again"], to=TensorProto.INT64),
             helper.make_node("Reshape", ["x", "x_shape_again"], ["x_again"])]
    nodes += [helper.make_node(op.split("_")[0], ["data", *inputs], [f"{op}_out"], name=op, **attributes)
              for op, (inputs, attributes) in ops.items()]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 6])], [],
                              [numpy_helper.from_array(np.zeros((), np.float32), "zero"), *consts.values()])
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    inferred = {value.name: value for value in model.graph.value_info}
    model.graph.output.extend(inferred[name] for name in ["x_again", *(f"{op}_out" for op in ops)])
    path = tmp_path / f"{data_type}.onnx"
    onnx.save(model, str(path))
    placed = snapdragon.placed_on_cpu(path, {}, chipset("snapdragon-8-gen-3"))
    assert cpu_layers(load_shaped(path)) == placed
    assert placed == {"bool": {"Cast": 1, "Equal": 1, "GatherND": 1, "Pad": 1, "ScatterElements": 1},
                      "int32": {"Neg": 1, "Pad": 1}, "float32": {"Cast": 1},
                      "float16": {"Cast": 2}}[data_type]


def test_ask_qnn_names_the_layers_the_installed_provider_leaves_to_the_cpu(tmp_path):
    """The estimate's rules name an RNN and an Einsum QNN does not build; `--ask-qnn` compiles the graph in the
    installed provider (its dynamic batch set to 1, as the estimate reads it) and also finds what no rule covers: a
    Transpose of raw 8-bit pixels. The Conv stays on the NPU."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name) for name, shape in (
        ("conv_w", (4, 3, 3, 3)), ("rnn_w", (1, 6, 5)), ("rnn_r", (1, 6, 6)), ("projection", (4, 5)))]
    nodes = [helper.make_node("Conv", ["image", "conv_w"], ["features"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("RNN", ["sequence", "rnn_w", "rnn_r"], ["states"], hidden_size=6, name="rnn"),
             helper.make_node("Einsum", ["tokens", "projection"], ["projected"], equation="bij,jk->bik", name="einsum"),
             helper.make_node("Transpose", ["pixels"], ["columns"], name="transpose")]
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 8, 8]),
              helper.make_tensor_value_info("sequence", TensorProto.FLOAT, [4, 1, 5]),
              helper.make_tensor_value_info("tokens", TensorProto.FLOAT, [2, 3, 4]),
              helper.make_tensor_value_info("pixels", TensorProto.UINT8, [2, 6])]
    outputs = [helper.make_tensor_value_info(name, elem, None) for name, elem in (
        ("features", TensorProto.FLOAT), ("states", TensorProto.FLOAT), ("projected", TensorProto.FLOAT),
        ("columns", TensorProto.UINT8))]
    path = tmp_path / "placement.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, weights),
                                opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert json.loads(run_cli("estimate", path, "--json").stdout)["on_cpu"] == {"Einsum": 1, "RNN": 1}
    asked = run_cli("estimate", path, "--json", "--ask-qnn")
    assert json.loads(asked.stdout)["on_cpu"] == {"Einsum": 1, "RNN": 1, "Transpose": 1}
    assert f"{path}: placed by onnxruntime-qnn for Snapdragon 8 Gen 3 in " in asked.stderr
    detached = tmp_path / "detached.onnx"  # its weights beside it, then lost: the estimate needs none, QNN all
    onnx.save(onnx.load(str(path)), str(detached), save_as_external_data=True, location="detached.onnx.data",
              size_threshold=0)
    (tmp_path / "detached.onnx.data").unlink()
    assert json.loads(run_cli("estimate", detached, "--json").stdout)["on_cpu"] == {"Einsum": 1, "RNN": 1}
    assert_clean_error(run_cli("estimate", detached, "--ask-qnn"), f"cannot read the weights of {detached}",
                       "its external data must be beside it")


def test_hard_swish_estimates_alike_as_one_op_or_as_x_times_hard_sigmoid(tmp_path):
    """Opset 13 exporters and onnxruntime's QNN pre-processing write hard-swish as x * HardSigmoid(x); it is folded
    into the Conv before it as the HardSwish op is (and SiLU's x * Sigmoid(x)), so one network estimates alike either
    way (torchvision's MobileNet-v3 at opset 11 estimated 19% slower than at opset 17)."""
    weights = [numpy_helper.from_array(np.ones((16, 8, 3, 3), np.float32), "w")]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 10, 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 10, 10])
    conv = helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv")
    spellings = {"one_op": [helper.make_node("HardSwish", ["c"], ["y"], name="hard_swish")],
                 "two_ops": [helper.make_node("HardSigmoid", ["c"], ["gate"], alpha=1 / 6, name="hard_sigmoid"),
                             helper.make_node("Mul", ["c", "gate"], ["y"], name="hard_swish")]}
    totals = {}
    for spelling, nodes in spellings.items():
        path = tmp_path / f"{spelling}.onnx"
        onnx.save(helper.make_model(helper.make_graph([conv, *nodes], "g", [x], [y], weights),
                                    opset_imports=[helper.make_opsetid("", 18)]), str(path))
        kinds = {c.name: (c.kind, c.dispatches) for c in layer_costs(load_shaped(path), "fp16", vtcm_bytes=0)}
        assert kinds["hard_swish"] == ("fused", 0)
        totals[spelling] = json.loads(run_cli("estimate", path, "--precision", "float", "--json").stdout)["total_ms"]
    assert totals["one_op"] == totals["two_ops"] > 0


def test_estimate_command_on_any_onnx_model_by_hand(tmp_path):
    """`estimate --json` on a hand-made Conv 8->16 3x3 at 10x10 with a dynamic batch (taken as 1): the chipset
    profile's fitted constants applied by hand, per precision, with their held-out error band, and the time by op
    type and per layer (`--top`), slowest first; the layer's name is printed as written, not read as markup. With
    two chipsets, one object each, as each alone gives."""
    weights = [numpy_helper.from_array(np.ones((16, 8, 3, 3), np.float32), "w")]
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], name="[stem]/conv")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 10, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], weights)
    path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    chip, macs, params, io = chipset("snapdragon-8-gen-3"), 16 * 100 * 8 * 9, 16 * 8 * 9, (8 + 16) * 100
    int8_macs = chip.npu_int8_tops * 1e12 / 2
    peak_macs = {"float": int8_macs / 4, "w8a8": int8_macs, "w8a16": int8_macs / 2}
    weight_bytes = {"float": 2 * params, "w8a8": params, "w8a16": params}  # activations fit in VTCM: no DDR traffic
    for precision in ("float", "w8a8", "w8a16"):
        result = run_cli("estimate", path, "--precision", precision, "--json")
        assert result.exit_code == 0, result.output
        [line] = result.stdout.splitlines()
        fitted = chip.estimate[precision]
        conv_ms = (max(macs / (peak_macs[precision] * fitted["dense_efficiency"]),
                       weight_bytes[precision] / (chip.memory_bandwidth_gbps * 1e9 * fitted["memory_efficiency"])) * 1e3
                   + fitted["op_overhead_us"] / 1e3)
        io_ms = io * fitted["io_ns_per_value"] / 1e6
        assert json.loads(line) == {"model": str(path), "chipset": "snapdragon-8-gen-3", "precision": precision,
                                    "total_ms": pytest.approx(conv_ms + io_ms, abs=1e-4),
                                    "held_out_error": fitted["held_out_error"], "input_shapes": {"x": [1, 8, 10, 10]},
                                    "dynamic_inputs_as_1": ["x"], "not_costed": {}, "read_as_qdq": {}, "on_cpu": {},
                                    "by_op_type": {"Conv": pytest.approx(conv_ms, abs=1e-4),
                                                   "IO": pytest.approx(io_ms, abs=1e-4)}}
        slowest = sorted([("[stem]/conv", "Conv", conv_ms, macs), ("graph inputs and outputs", "IO", io_ms, None)],
                         key=lambda layer: -layer[2])
        listed = json.loads(run_cli("estimate", path, "--precision", precision, "--top", "2", "--json").stdout)
        assert [(layer["name"], layer["op_type"], layer["ms"], layer["macs"]) for layer in listed["slowest_layers"]] == [
            (name, op_type, pytest.approx(ms, abs=1e-5), layer_macs) for name, op_type, ms, layer_macs in slowest]
        assert list(listed["by_op_type"]) == [op_type for _, op_type, _, _ in slowest]
    assert json.loads(run_cli("estimate", path, "--json").stdout)["precision"] == "float"  # not QDQ: float
    text = run_cli("estimate", path, "--precision", "w8a16").stdout
    assert f"held-out median error {chip.estimate['w8a16']['held_out_error']['median']:.0%}" in text
    assert f"{conv_ms + io_ms:.3g} ms per call" in text  # under a millisecond: three digits, not 0.00
    listed = run_cli("estimate", path, "--precision", "w8a16", "--top", "1").stdout
    assert f"by op type: {slowest[0][1]} {slowest[0][2]:.3g} ms ({slowest[0][2] / (conv_ms + io_ms):.0%})\n" in listed
    assert f"│ {slowest[0][2]:.3g} │" in listed and slowest[0][0] in listed and slowest[1][0] not in listed
    chips = ("snapdragon-8-gen-3", "snapdragon-8-elite")
    each = [json.loads(run_cli("estimate", path, "--chipset", name, "--json").stdout) for name in chips]
    both = run_cli("estimate", path, "--chipset", chips[0], "--chipset", chips[1], "--json").stdout.splitlines()
    assert [json.loads(line) for line in both] == each and each[0]["total_ms"] != each[1]["total_ms"]


def test_estimate_reads_quantized_operators_as_their_qdq_form(tmp_path):
    """A graph quantized by onnxruntime in its QOperator format (QLinearConv with per-channel weights and a bias,
    QLinearMatMul, and onnxruntime's own QLinearSigmoid, QLinearAdd, QLinearConcat and QGemm, which its QNN provider
    leaves to the CPU)
    estimates as the same graph quantized in QDQ format, layer by layer, under its own layer names, and says what it
    read so. (A QLinearConv used to be costed as an elementwise op, and the graph after a contrib op not at all.)"""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter([{"x": np.random.default_rng(seed).normal(size=(1, 8, 10, 10)).astype(np.float32)}
                               for seed in range(2)])

        def get_next(self) -> dict | None:
            return next(self.feeds, None)

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)
               for name, shape in (("w", (16, 8, 3, 3)), ("b", (16,)), ("g", (100, 24)), ("c", (24,)), ("m", (24, 8)))] + [
        numpy_helper.from_array(np.array([32, 100], np.int64), "rows")]
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1], name="conv"),
                               helper.make_node("Sigmoid", ["y"], ["gate"], name="gate"),
                               helper.make_node("Add", ["y", "gate"], ["sum"], name="residual"),
                               helper.make_node("Concat", ["sum", "y"], ["both"], axis=1, name="both"),
                               helper.make_node("Reshape", ["both", "rows"], ["t"], name="flatten"),
                               helper.make_node("Gemm", ["t", "g", "c"], ["u"], name="dense"),
                               helper.make_node("MatMul", ["u", "m"], ["z"], name="project")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 10, 10])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [32, 8])], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "float.onnx"))
    estimates = {}
    for quant_format in (QuantFormat.QOperator, QuantFormat.QDQ):
        path = tmp_path / f"{quant_format.name}.onnx"
        quantize_static(str(tmp_path / "float.onnx"), str(path), Images(), quant_format=quant_format,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        result = run_cli("estimate", path, "--top", "7", "--json")
        assert result.exit_code == 0, result.output
        estimates[quant_format.name] = json.loads(result.stdout)
    qoperator, qdq = estimates["QOperator"], estimates["QDQ"]
    read = {"QLinearConv": 1, "QLinearMatMul": 1, "com.microsoft.QGemm": 1, "com.microsoft.QLinearAdd": 1,
            "com.microsoft.QLinearConcat": 1, "com.microsoft.QLinearSigmoid": 1}
    assert qoperator["read_as_qdq"] == read and qdq["read_as_qdq"] == {}
    assert qoperator["on_cpu"] == {op: 1 for op in read if op.startswith("com.microsoft.")} and qdq["on_cpu"] == {}
    assert qoperator["precision"] == qdq["precision"] == "w8a8" and qoperator["not_costed"] == qdq["not_costed"] == {}
    assert qoperator["total_ms"] == qdq["total_ms"] and qoperator["by_op_type"] == qdq["by_op_type"]
    assert set(qdq["by_op_type"]) == {"IO", "Conv", "Sigmoid", "Add", "Concat", "Gemm", "MatMul"}
    assert [(layer["op_type"], layer["ms"], layer["macs"]) for layer in qoperator["slowest_layers"]] == [
        (layer["op_type"], layer["ms"], layer["macs"]) for layer in qdq["slowest_layers"]]
    assert {layer["name"] for layer in qoperator["slowest_layers"]} == {
        "graph inputs and outputs", "conv_quant", "gate_quant", "residual_quant", "both_quant", "dense_quant",
        "project_quant"}
    costs = {name: [(cost.op_type, cost.kind, cost.macs, cost.weight_bytes, cost.activation_bytes, cost.elements)
                    for cost in layer_costs(load_shaped(tmp_path / f"{name}.onnx"), "w8a8", 2**23)]
             for name in estimates}
    assert costs["QOperator"] == costs["QDQ"]
    assert [(cost[0], cost[2], cost[3]) for cost in costs["QDQ"]] == [  # MACs; weights read, biases included
        ("Conv", 16 * 100 * 8 * 9, 16 * 8 * 9 + 16), ("Sigmoid", 0, 0), ("Add", 0, 0), ("Concat", 0, 0),
        ("Gemm", 32 * 24 * 100, 100 * 24 + 24), ("MatMul", 32 * 8 * 24, 24 * 8)]
    quantize_dynamic(str(tmp_path / "float.onnx"), str(tmp_path / "dynamic.onnx"), op_types_to_quantize=["Conv", "MatMul"])
    dynamic = json.loads(run_cli("estimate", tmp_path / "dynamic.onnx", "--json").stdout)
    assert dynamic["precision"] == "w8a8" and dynamic["read_as_qdq"] == dynamic["on_cpu"] == {"ConvInteger": 1, "MatMulInteger": 2}
    assert dynamic["not_costed"] == {}
    mac_layers = [(cost.name, cost.op_type, cost.kind, cost.macs, cost.weight_bytes)
                  for cost in layer_costs(load_shaped(tmp_path / "dynamic.onnx"), "w8a8", 2**23) if cost.macs]
    assert mac_layers == [("conv_quant", "Conv", "dense", 16 * 100 * 8 * 9, 16 * 8 * 9),  # biases added after
                          ("dense_MatMul_quant", "MatMul", "dense", 32 * 24 * 100, 100 * 24),
                          ("project_quant", "MatMul", "dense", 32 * 8 * 24, 24 * 8)]
    text = run_cli("estimate", tmp_path / "QOperator.onnx", tmp_path / "dynamic.onnx").stdout
    assert ("read as the QDQ graph they stand for: 1 QLinearConv, 1 QLinearMatMul, 1 com.microsoft.QGemm, "
            "1 com.microsoft.QLinearAdd, 1 com.microsoft.QLinearConcat, 1 com.microsoft.QLinearSigmoid; onnxruntime's "
            "QNN provider runs 1 com.microsoft.QGemm, 1 com.microsoft.QLinearAdd, 1 com.microsoft.QLinearConcat, "
            "1 com.microsoft.QLinearSigmoid on the CPU: quantize statically in QDQ format to run them on the NPU)") in text
    assert ("read as the QDQ graph they stand for: 1 ConvInteger, 2 MatMulInteger; onnxruntime's QNN provider runs "
            "1 ConvInteger, 2 MatMulInteger on the CPU: quantize statically") in text


def test_estimate_refuses_what_is_not_a_model(snapdragon_bundle, tmp_path):
    """A missing file, bytes that are not ONNX, an empty file (a download cut short), a protobuf that parses as an
    ONNX model but holds no graph, a compiled context model (its layers in a QNN binary: it estimated at 0.002 ms)
    and a bundle's folder: one line each, never an estimate of 0 ms."""
    (tmp_path / "text.onnx").write_text("not onnx\n")
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "graphless.onnx").write_bytes(b"x\n")  # field 15, a varint: a ModelProto with no graph
    [compiled] = (snapdragon_bundle / "qnn").glob("snapdragon-8-gen-3/unet.*.onnx")
    cases = {tmp_path / "missing.onnx": "is not a file", tmp_path / "text.onnx": "is not an ONNX model",
             tmp_path / "empty.onnx": "holds no ONNX graph", tmp_path / "graphless.onnx": "holds no ONNX graph",
             compiled: "is a compiled context model (EPContext)",
             snapdragon_bundle: f"is a folder; pass ONNX model files (a bundle's estimate: profile {snapdragon_bundle}"}
    for path, fragment in cases.items():
        result = run_cli("estimate", path, "--chipset", "snapdragon-8-gen-3", "--json")
        assert_clean_error(result, str(path), fragment)
        assert result.stdout == ""


def test_estimate_gate_against_a_previous_estimate(tmp_path):
    """`estimate --baseline` (what `estimate --json` printed) fails, after printing every estimate, on a model slower
    in total or per op type than allowed, on an op type it can no longer cost and on a layer that would run on the
    CPU. Models are compared per chipset:
    one the baseline lacks on a chipset, or has and the run does not, is named and passes; a baseline of another
    precision, or not written by `estimate --json`, is one line."""
    weights = [numpy_helper.from_array(np.ones((16, 8, 3, 3), np.float32), "w")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Softmax", ["c"], ["y"], axis=1, name="softmax")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 32, 32])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)]
    model, other = tmp_path / "model.onnx", tmp_path / "other.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, weights), opset_imports=opsets), model)
    onnx.save(helper.make_model(helper.make_graph(nodes[:1], "g", inputs, [
        helper.make_tensor_value_info("c", TensorProto.FLOAT, None)], weights), opset_imports=opsets), other)
    written = run_cli("estimate", model, "--json")
    (tmp_path / "base.jsonl").write_text(written.stdout)
    [estimate] = [json.loads(line) for line in written.stdout.splitlines()]
    same = run_cli("estimate", model, other, "--baseline", tmp_path / "base.jsonl")
    assert same.exit_code == 0 and f"{other} on snapdragon-8-gen-3: not in the baseline" in same.stderr
    assert "no regression against" in same.stderr.splitlines()[-1]
    (tmp_path / "both.jsonl").write_text(run_cli("estimate", model, other, "--json").stdout)
    fewer = run_cli("estimate", model, "--baseline", tmp_path / "both.jsonl")
    assert fewer.exit_code == 0
    assert f"{other} on snapdragon-8-gen-3: in the baseline {tmp_path / 'both.jsonl'}, not estimated now" in fewer.stderr
    elsewhere = run_cli("estimate", model, "--chipset", "snapdragon-8-elite", "--baseline", tmp_path / "base.jsonl")
    assert elsewhere.exit_code == 0 and f"{model} on snapdragon-8-elite: not in the baseline" in elsewhere.stderr
    assert f"{model} on snapdragon-8-gen-3: in the baseline" in elsewhere.stderr

    faster = {**estimate, "by_op_type": {**estimate["by_op_type"], "Softmax": estimate["by_op_type"]["Softmax"] / 1.06}}
    (tmp_path / "faster.jsonl").write_text(json.dumps(faster) + "\n")
    softmax_share = estimate["by_op_type"]["Softmax"] / estimate["total_ms"]
    assert 0.06 / 1.06 * softmax_share < 0.05  # the total stays within 5%: only the op type fails
    slower = run_cli("estimate", model, "--json", "--baseline", tmp_path / "faster.jsonl", "--max-regression", "5%")
    assert_clean_error(slower, "1 regression(s) against", after_progress=True)
    assert json.loads(slower.stdout)["total_ms"] == estimate["total_ms"]  # the estimate is printed all the same
    assert f"regression {model} on snapdragon-8-gen-3 (Softmax): " in slower.stderr and "(+6.0%)" in slower.stderr
    assert run_cli("estimate", model, "--baseline", tmp_path / "faster.jsonl", "--max-regression", "7%").exit_code == 0

    cut = nodes[:1] + [helper.make_node("Fancy", ["c"], ["y"], domain="com.example", name="fancy")]
    onnx.save(helper.make_model(helper.make_graph(cut, "g", inputs, outputs, weights), opset_imports=opsets), model)
    uncosted = run_cli("estimate", model, "--baseline", tmp_path / "base.jsonl")
    assert_clean_error(uncosted, "1 regression(s)", after_progress=True)
    assert f"regression {model} on snapdragon-8-gen-3 (com.example.Fancy): 0 -> 1 (layers no longer costed)" in uncosted.stderr
    recurrent = cut[:1] + [helper.make_node("Reshape", ["c", "sequence"], ["s"]),
                           helper.make_node("RNN", ["s", "rnn_w", "rnn_r"], ["y"], hidden_size=4, name="rnn")]
    recurrent_weights = weights + [numpy_helper.from_array(np.array([32, 1, 512]), "sequence"),
                                   numpy_helper.from_array(np.ones((1, 4, 512), np.float32), "rnn_w"),
                                   numpy_helper.from_array(np.ones((1, 4, 4), np.float32), "rnn_r")]
    onnx.save(helper.make_model(helper.make_graph(recurrent, "g", inputs, outputs, recurrent_weights),
                                opset_imports=opsets), model)
    on_cpu = run_cli("estimate", model, "--baseline", tmp_path / "base.jsonl", "--max-regression", "1000%")
    assert_clean_error(on_cpu, "1 regression(s)", after_progress=True)
    assert f"regression {model} on snapdragon-8-gen-3 (RNN): 0 -> 1 (layers on the CPU)" in on_cpu.stderr

    assert_clean_error(run_cli("estimate", model, "--precision", "w8a16", "--baseline", tmp_path / "base.jsonl"),
                       "at precision float and this run at w8a16; pass --precision float", after_progress=True)
    (tmp_path / "cut.jsonl").write_text(json.dumps({key: estimate[key] for key in ("model", "chipset", "precision")}))
    for name, fragment in {"missing.jsonl": "does not exist", "cut.jsonl": "line 1 is not an object 'estimate --json'",
                           "model.onnx": "cannot be read as text", ".": "cannot be read as text"}.items():
        result = run_cli("estimate", model, "--baseline", tmp_path / name)
        assert_clean_error(result, fragment)
        assert result.stdout == ""


class ConvAttention(torch.nn.Module):
    """A Conv, its image as a token sequence, two-head self-attention and a Linear, with the shapes taken from the
    tensors (as an export with dynamic axes computes them: Shape, Gather, Concat into Reshapes)."""

    def __init__(self, channels: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.conv, self.heads = torch.nn.Conv2d(3, channels, 3, padding=1), heads
        self.qkv, self.out = torch.nn.Linear(channels, 3 * channels), torch.nn.Linear(channels, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = self.conv(x)
        batch, channels, height, width = image.shape
        tokens = image.reshape(batch, channels, height * width).transpose(1, 2)
        q, k, v = self.qkv(tokens).reshape(batch, height * width, 3 * self.heads, -1).transpose(1, 2).chunk(3, dim=1)
        attended = torch.softmax(q @ k.transpose(-1, -2) * 0.25, dim=-1) @ v
        return self.out(attended.transpose(1, 2).reshape(batch, height * width, channels))


def test_estimate_takes_a_dynamic_graph_at_the_shapes_given(tmp_path):
    """Exported with dynamic batch, height and width and estimated with --input-shape, a graph estimates exactly as
    its static export: its Reshapes' shapes propagate from the input's and the shape arithmetic computing them is
    folded (before, its MatMuls counted no MACs and its Gathers were dispatched). Without the shape, its dynamic
    dimensions are taken as 1 and named."""
    model, example = ConvAttention().eval(), torch.randn(1, 3, 24, 32)
    paths = {kind: tmp_path / f"{kind}.onnx" for kind in ("static", "dynamic")}
    torch.onnx.export(model, (example,), paths["static"], input_names=["x"], dynamo=False)
    torch.onnx.export(model, (example,), paths["dynamic"], input_names=["x"], dynamo=False,
                      dynamic_axes={"x": {0: "batch", 2: "height", 3: "width"}})
    assert sum(node.op_type == "Shape" for node in onnx.load(paths["dynamic"]).graph.node) >= 4

    def estimate(path, *options):
        result = run_cli("estimate", path, "--precision", "w8a16", "--json", *options)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    static, given = estimate(paths["static"]), estimate(paths["dynamic"], "--input-shape", "x=1,3,24,32")
    assert given == {**static, "model": str(paths["dynamic"])}
    assert static["input_shapes"] == {"x": [1, 3, 24, 32]} and static["dynamic_inputs_as_1"] == []
    assert static["not_costed"] == {}
    taken_as_1 = estimate(paths["dynamic"])
    assert taken_as_1["input_shapes"] == {"x": [1, 3, 1, 1]} and taken_as_1["dynamic_inputs_as_1"] == ["x"]
    assert taken_as_1["total_ms"] < static["total_ms"] / 2
    text = run_cli("estimate", paths["dynamic"]).stdout
    assert "dynamic dimensions of x taken as 1 (give them with --input-shape)" in text


def test_estimate_names_the_layers_it_cannot_cost(tmp_path):
    """Control flow (its subgraphs are not walked) and layers whose output shape is not inferred (an op of another
    domain, and what follows it) are named with their counts, in the line and in --json. So is an If on shape
    arithmetic that cannot be evaluated (here by an op of another domain): its branches may read any value."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    branch = {name: helper.make_graph([helper.make_node(op, ["x"], [name])], name, [],
                                      [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 4])])
              for name, op in (("then", "Relu"), ("else", "Neg"))}
    nodes = [helper.make_node("If", ["flag"], ["chosen"], then_branch=branch["then"], else_branch=branch["else"]),
             helper.make_node("Blur", ["chosen"], ["blurred"], domain="com.example"),
             helper.make_node("Sigmoid", ["blurred"], ["y"]),
             helper.make_node("Size", ["x"], ["size"]), helper.make_node("IsOdd", ["size"], ["odd"], domain="com.example"),
             helper.make_node("If", ["odd"], ["z"], then_branch=branch["then"], else_branch=branch["else"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("flag", TensorProto.BOOL, []), x],
                              [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in "yz"])
    path = tmp_path / "branches.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)]),
              path)
    result = run_cli("estimate", path, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["not_costed"] == {"If": 2, "Sigmoid": 1, "com.example.Blur": 1}
    assert "not costed, with no inferred output shape or with subgraphs: 2 If, 1 Sigmoid, 1 com.example.Blur" in \
        run_cli("estimate", path).stdout


def test_estimate_gives_each_graph_the_input_shapes_it_has(tmp_path):
    """Each --input-shape goes to the graphs with an input of that name (a CI job estimates a text encoder and a UNet
    in one call); one that no graph has, or one that does not keep an input's fixed dimensions, is one line, and every
    graph is checked before any is estimated (nothing on stdout)."""
    paths = {}
    for name, shape in (("x", ["N", 8, 10, 10]), ("z", ["N", "L"])):
        graph = helper.make_graph([helper.make_node("Relu", [name], ["y"])], "g",
                                  [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        paths[name] = tmp_path / f"relu_{name}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), paths[name])
    result = run_cli("estimate", paths["x"], paths["z"], "--input-shape", "x=2,8,10,10", "--input-shape", "z=3,5",
                     "--json")
    assert result.exit_code == 0, result.output
    assert [(line["input_shapes"], line["dynamic_inputs_as_1"]) for line in map(json.loads, result.stdout.splitlines())] \
        == [({"x": [2, 8, 10, 10]}, []), ({"z": [3, 5]}, [])]
    cases = {"y=1,8,10,10": ("--input-shape names y, which no graph passed has as an input", "relu_z.onnx: z"),
             "x=1,8,10": ("relu_x.onnx: input 'x' is Nx8x10x10; 1x8x10 does not fit its fixed dimensions",),
             "x=2,8,12,10": ("input 'x' is Nx8x10x10; 2x8x12x10 does not fit",),
             "x=1,8,a,10": ("'x=1,8,a,10' is not NAME=DIM,DIM,...",), "x=0,8,10,10": ("is not NAME=DIM,DIM",)}
    for shape, fragments in cases.items():
        result = run_cli("estimate", paths["z"], paths["x"], "--input-shape", shape)
        assert_clean_error(result, *fragments)
        assert result.stdout == ""


def test_shapes_are_inferred_with_large_weights_left_out():
    """Shape inference serialises the model (protobuf refuses over 2 GB: SD-1.5's float UNet failed the SiLU
    rewrite): large weights become typed inputs for it, the model itself keeps them."""
    weight = numpy_helper.from_array(np.zeros((256, 256, 2, 2), np.float32), "w")  # 1 MiB
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Reshape", ["c", "shape"], ["y"], name="flatten")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [weight, numpy_helper.from_array(np.array([1, -1], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    shapes = static_shapes(model)
    assert shapes["c"] == [1, 256, 7, 7] and shapes["y"] == [1, 256 * 49]
    assert [tensor.name for tensor in model.graph.initializer] == ["w", "shape"] and len(model.graph.input) == 1


def test_a_matmul_bias_costs_what_a_gemm_bias_costs(tmp_path):
    """torch writes a Linear as Gemm on 2-D inputs and as MatMul then Add on 3-D ones: the bias Add is part of the
    MatMul (it neither dispatches nor writes), so both spellings estimate alike; an Add of anything else after a
    MatMul (a scalar, a full tensor, a bias after attention's MatMul of two activations) stays a layer."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((16, 32)).astype(np.float32), "m"),
               numpy_helper.from_array(rng.standard_normal(32).astype(np.float32), "b"),
               numpy_helper.from_array(rng.standard_normal(100).astype(np.float32), "b100"),
               numpy_helper.from_array(rng.standard_normal(1).astype(np.float32), "one")]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [100, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [100, 32])
    spellings = {"gemm": [helper.make_node("Gemm", ["x", "m", "b"], ["y"], name="linear")],
                 "matmul": [helper.make_node("MatMul", ["x", "m"], ["xm"], name="linear"),
                            helper.make_node("Add", ["b", "xm"], ["y"], name="bias")]}
    totals = {}
    for name, nodes in spellings.items():
        path = tmp_path / f"{name}.onnx"
        onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], [y], weights[:2]),
                                    opset_imports=[helper.make_opsetid("", 18)]), str(path))
        totals[name] = json.loads(run_cli("estimate", path, "--precision", "w8a16", "--json").stdout)["total_ms"]
    assert totals["matmul"] == totals["gemm"] > 0
    nodes = [*spellings["matmul"][:1],
             helper.make_node("Add", ["xm", "one"], ["shifted"], name="scalar"),
             helper.make_node("Add", ["xm", "xm"], ["doubled"], name="tensor"),
             helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0]),
             helper.make_node("MatMul", ["x", "xt"], ["scores"], name="attention"),
             helper.make_node("Add", ["scores", "b100"], ["biased"], name="after_attention")]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in
               (("shifted", [100, 32]), ("doubled", [100, 32]), ("biased", [100, 100]))]
    path = tmp_path / "others.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], outputs, weights),
                                opset_imports=[helper.make_opsetid("", 18)]), str(path))
    kinds = {c.name: (c.kind, c.dispatches) for c in layer_costs(load_shaped(path), "w8a16", vtcm_bytes=0)}
    assert [kinds[name] for name in ("scalar", "tensor", "after_attention")] == [("vector", 1)] * 3


def test_a_constant_epilogue_is_part_of_its_layer(tmp_path):
    """A GroupNorm as torch exports it (InstanceNormalization over groups, then a Mul and an Add of one value per
    channel) estimates as its norm alone, and a per-channel Mul and Add after a Conv as the Conv alone: QNN's
    converter folds them into the layer. What follows them is costed as before (the SiLU after a norm is a layer),
    and a per-channel Mul after an activation, or of a constant with a value per pixel, stays a layer."""
    rng = np.random.default_rng(0)
    constant = lambda name, shape: numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)  # noqa: E731
    weights = [numpy_helper.from_array(np.array([1, 8, -1]), "grouped"),
               numpy_helper.from_array(np.array([1, 32, 16, 16]), "image"),
               constant("ones", (8,)), constant("zeros", (8,)), constant("gamma", (32, 1, 1)),
               constant("beta", (32, 1, 1)), constant("kernel", (32, 32, 1, 1)), constant("pixels", (1, 32, 16, 16))]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 16, 16])
    norm = [helper.make_node("Reshape", ["x", "grouped"], ["g"]),
            helper.make_node("InstanceNormalization", ["g", "ones", "zeros"], ["n"], name="norm"),
            helper.make_node("Reshape", ["n", "image"], ["normalized"])]
    affine = [helper.make_node("Mul", ["normalized", "gamma"], ["scaled"], name="scale"),
              helper.make_node("Add", ["scaled", "beta"], ["shifted"], name="shift")]
    silu = lambda source: [helper.make_node("Sigmoid", [source], ["gate"], name="sigmoid"),  # noqa: E731
                           helper.make_node("Mul", [source, "gate"], ["y"], name="silu")]

    def save(name: str, nodes: list) -> Path:
        path = tmp_path / f"{name}.onnx"
        outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 32, 16, 16])
                   for name in ("y", "z") if any(name in node.output for node in nodes)]
        onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], outputs, weights),
                                    opset_imports=[helper.make_opsetid("", 18)]), str(path))
        return path

    def total(path: Path) -> float:
        return json.loads(run_cli("estimate", path, "--precision", "w8a16", "--json").stdout)["total_ms"]

    group_norm = save("group_norm", [*norm, *affine, *silu("shifted")])
    assert total(group_norm) == total(save("instance_norm", [*norm, *silu("normalized")])) > 0
    kinds = {c.name: (c.kind, c.dispatches) for c in layer_costs(load_shaped(group_norm), "w8a16", vtcm_bytes=0)}
    assert [kinds[name] for name in ("scale", "shift", "sigmoid")] == [("fused", 0), ("fused", 0), ("vector", 1)]
    conv = helper.make_node("Conv", ["x", "kernel"], ["c"], name="conv")
    after_conv = [conv, helper.make_node("Mul", ["c", "gamma"], ["cs"], name="scale"),
                  helper.make_node("Add", ["cs", "beta"], ["y"], name="shift")]
    assert total(save("conv_affine", after_conv)) == total(save("conv", [helper.make_node("Conv", ["x", "kernel"], ["y"])]))
    others = [conv, helper.make_node("Relu", ["c"], ["r"], name="relu"),
              helper.make_node("Mul", ["r", "gamma"], ["y"], name="after_activation"),
              helper.make_node("Mul", ["c", "pixels"], ["z"], name="per_pixel")]
    kinds = {c.name: c.kind for c in layer_costs(load_shaped(save("others", others)), "w8a16", vtcm_bytes=0)}
    assert [kinds[name] for name in ("relu", "after_activation", "per_pixel")] == ["fused", "vector", "vector"]


def test_an_op_that_copies_its_input_is_free(tmp_path):
    """A Pad by nothing (timm's Swin at 224), a Slice of the whole tensor, an Expand and a Tile to the same shape
    cost nothing, as compilers and onnxsim drop them (a Slice's steps stored or given by a Constant node); a Slice
    that reverses the tensor (torch's flip) and a Pad that pads are layers."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    weights = [numpy_helper.from_array(np.array(values, np.int64), name) for name, values in (
        ("no_pads", [0] * 8), ("pads", [0, 0, 1, 1, 0, 0, 1, 1]), ("starts", [0]), ("ends", [16]), ("axes", [3]),
        ("shape", [1, 8, 16, 16]), ("ones", [1, 1, 1, 1]), ("rstarts", [-1]), ("rends", [-17]),
        ("backward", [-1]))]
    steps = helper.make_node("Constant", [], ["constant_steps"], value=numpy_helper.from_array(np.array([1]), "v"))
    copies = [steps, helper.make_node("Pad", ["x", "no_pads"], ["a"], name="pad"),
              helper.make_node("Slice", ["a", "starts", "ends", "axes", "constant_steps"], ["b"], name="slice"),
              helper.make_node("Expand", ["b", "shape"], ["c"], name="expand"),
              helper.make_node("Tile", ["c", "ones"], ["d"], name="tile"),
              helper.make_node("Relu", ["d"], ["y"], name="relu")]
    layers = {"flip": [helper.make_node("Slice", ["x", "rstarts", "rends", "axes", "backward"], ["r"], name="flip")],
              "pad": [helper.make_node("Pad", ["x", "pads"], ["r"], name="pad")]}

    def costs(name: str, nodes: list) -> list[LayerCost]:
        path = tmp_path / f"{name}.onnx"
        onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], [y], weights),
                                    opset_imports=[helper.make_opsetid("", 18)]), str(path))
        return layer_costs(load_shaped(path), "fp16", vtcm_bytes=0)

    assert costs("copies", copies) == costs("relu", [helper.make_node("Relu", ["x"], ["y"], name="relu")])
    for name, nodes in layers.items():
        assert [c.name for c in costs(name, [*nodes, helper.make_node("Relu", ["r"], ["y"], name="relu")])] == [
            name, "relu"]


def test_a_layer_norm_written_out_estimates_as_layer_normalization(tmp_path):
    """Below opset 17 exporters write a layer norm as ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div (and its scale
    and shift as a Mul and an Add), which onnxruntime's QNN provider fuses into one LayerNorm op: at opset 13 (axes
    as an attribute) and written by hand at opset 18 (axes as an input) its layers are the LayerNormalization's of
    opset 18, after a Transpose as after a MatMul (their traffic differs by the affine's weights and the 1/std values
    the Div reads). Over the channel axis, or with the centred value read elsewhere too, it stays seven layers."""
    rng = np.random.default_rng(0)
    constant = lambda name, value: numpy_helper.from_array(np.asarray(value, np.float32), name)  # noqa: E731
    weights = [constant("w", rng.standard_normal((32, 32))), constant("gamma", rng.standard_normal(32)),
               constant("beta", rng.standard_normal(32)), constant("two", 2.0), constant("eps", 1e-5),
               numpy_helper.from_array(np.array([-1]), "last"), numpy_helper.from_array(np.array([1]), "channels")]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 4, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    mean = lambda name, source, opset, axis="last": helper.make_node(  # noqa: E731
        "ReduceMean", [source, axis] if opset >= 18 else [source], [name], name=name,
        **({} if opset >= 18 else {"axes": [-1 if axis == "last" else 1]}))

    def written_out(opset: int, axis: str = "last") -> list:
        return [mean("mean", "t", opset, axis), helper.make_node("Sub", ["t", "mean"], ["centred"], name="centred"),
                helper.make_node("Pow", ["centred", "two"], ["square"], name="square"),
                mean("variance", "square", opset, axis), helper.make_node("Add", ["variance", "eps"], ["shifted"], name="shifted"),
                helper.make_node("Sqrt", ["shifted"], ["root"], name="root"),
                helper.make_node("Div", ["centred", "root"], ["n"], name="norm")]

    def costs(name: str, opset: int, norm: list, first: str = "Transpose", extra: tuple = ()) -> list[LayerCost]:
        layer = (helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1], name="first") if first == "Transpose"
                 else helper.make_node("MatMul", ["x", "w"], ["t"], name="first"))
        affine = [helper.make_node("Mul", ["n", "gamma"], ["scaled"], name="scale"),
                  helper.make_node("Add", ["scaled", "beta"], ["y"], name="shift")]
        path = tmp_path / f"{name}.onnx"
        onnx.save(helper.make_model(helper.make_graph([layer, *norm, *affine, *extra], "g", [x], [y], weights),
                                    opset_imports=[helper.make_opsetid("", opset)]), str(path))
        return [(c.name, c.kind, c.elements, c.dispatches) for c in layer_costs(load_shaped(path), "fp16", vtcm_bytes=0)]

    layer_norm = [helper.make_node("LayerNormalization", ["t", "gamma", "beta"], ["n"], axis=-1, name="norm")]
    for first in ("Transpose", "MatMul"):
        operator = [c for c in costs("operator", 18, layer_norm, first) if c[1] != "fused"]
        for opset in (13, 18):
            assert [c for c in costs(f"written_{opset}", opset, written_out(opset), first) if c[1] != "fused"] == operator
    vector = lambda layers: [name for name, kind, *_ in layers if kind == "vector"]  # noqa: E731
    seven = ["mean", "centred", "square", "variance", "shifted", "root", "norm"]
    assert vector(costs("channels", 13, written_out(13, axis="channels"))) == ["first", *seven, "scale", "shift"]
    assert "centred" in vector(costs("read_elsewhere", 13, written_out(13),
                                     extra=(helper.make_node("Relu", ["centred"], ["z"], name="elsewhere"),)))


def test_a_weight_computed_from_stored_values_is_a_weight(tmp_path):
    """torch's exporter stores equal tensors once and feeds the others through an Identity (tied embeddings, the
    zero biases of untrained layers), and torch.export slices an LSTM's weights out of one tensor: a Linear whose
    weight and bias come that way, or from a Slice and a Gather of stored values, estimates as with its own, layer by
    layer, and what computes them costs nothing (before, its MatMul ran at the attention rate and its bias as a
    layer; ConvNeXt-Tiny exported so estimated 10% slower than its simplified graph)."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((32, 48)).astype(np.float32), "w"),
               numpy_helper.from_array(rng.standard_normal(48).astype(np.float32), "b"),
               numpy_helper.from_array(rng.standard_normal((32, 96)).astype(np.float32), "w_both"),
               numpy_helper.from_array(rng.standard_normal((2, 48)).astype(np.float32), "b_table"),
               *(numpy_helper.from_array(np.array(values), name) for name, values in (
                   ("start", [0]), ("end", [48]), ("axis", [1]), ("row", 0)))]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 100, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 100, 48])
    linear = lambda weight, bias: [helper.make_node("MatMul", ["x", weight], ["m"], name="matmul"),  # noqa: E731
                                   helper.make_node("Add", [bias, "m"], ["y"], name="bias")]
    spellings = {"own": linear("w", "b"),
                 "shared": [helper.make_node("Identity", ["w"], ["w_shared"]),
                            helper.make_node("Identity", ["b"], ["b_shared"]), *linear("w_shared", "b_shared")],
                 "computed": [helper.make_node("Slice", ["w_both", "start", "end", "axis"], ["w_sliced"], name="slice"),
                              helper.make_node("Gather", ["b_table", "row"], ["b_row"], name="gather"),
                              *linear("w_sliced", "b_row")]}
    costs = {}
    for spelling, nodes in spellings.items():
        path = tmp_path / f"{spelling}.onnx"
        onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], [y], weights),
                                    opset_imports=[helper.make_opsetid("", 18)]), str(path))
        costs[spelling] = layer_costs(load_shaped(path), "fp16", vtcm_bytes=0)
    assert costs["shared"] == costs["computed"] == costs["own"]
    assert [(c.kind, c.weight_bytes) for c in costs["own"]] == [("dense", 32 * 48 * 2), ("fused", 48 * 2)]


def test_a_qdq_graph_is_estimated_as_its_float_graph_at_its_precision(tmp_path):
    """Q/DQ nodes cost nothing and weights count at their stored bytes, so the validation's float graphs stand for
    the W8A16 graphs AI Hub ran: a QDQ Conv (uint8 weights, uint16 activations) estimates as the float Conv at w8a16."""
    rng = np.random.default_rng(0)
    float_graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], name="conv")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 64, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32, 64, 64])],
        [numpy_helper.from_array(rng.standard_normal((32, 32, 3, 3)).astype(np.float32), "w")])
    qdq = [numpy_helper.from_array(rng.integers(0, 255, (32, 32, 3, 3)).astype(np.uint8), "w_q"),
           numpy_helper.from_array(np.array(0.01, np.float32), "scale"),
           numpy_helper.from_array(np.array(128, np.uint8), "w_zero"),
           numpy_helper.from_array(np.array(32768, np.uint16), "a_zero")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "a_zero"], ["x_q"]),
             helper.make_node("DequantizeLinear", ["x_q", "scale", "a_zero"], ["x_dq"]),
             helper.make_node("DequantizeLinear", ["w_q", "scale", "w_zero"], ["w"]),
             helper.make_node("Conv", ["x_dq", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("QuantizeLinear", ["c", "scale", "a_zero"], ["c_q"]),
             helper.make_node("DequantizeLinear", ["c_q", "scale", "a_zero"], ["y"])]
    qdq_graph = helper.make_graph(nodes, "g", list(float_graph.input), list(float_graph.output), qdq)
    paths = {}
    for name, graph in (("float", float_graph), ("qdq", qdq_graph)):
        paths[name] = tmp_path / f"{name}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), str(paths[name]))
    as_w8a16 = json.loads(run_cli("estimate", paths["float"], "--precision", "w8a16", "--json").stdout)
    own = json.loads(run_cli("estimate", paths["qdq"], "--json").stdout)
    assert own["precision"] == "w8a16" and own["total_ms"] == as_w8a16["total_ms"] > 0


def test_emulator_profiles_in_one_scratch_folder_each_report_one_run(snapdragon_bundle, tmp_path):
    """QNN appends to an existing profiling file: a second profile in the same folder must not count both runs."""
    from edgefusion_export.bundle.manifest import load_bundle
    from edgefusion_export.profile.emulator_backend import profile_bundle

    bundle, chip = load_bundle(snapdragon_bundle), chipset("snapdragon-8-gen-2")
    first, second = (profile_bundle(bundle, chip, tmp_path) for _ in range(2))
    assert [row.name for row in second.rows] == [row.name for row in first.rows]


def test_emulator_backend_reports_simulated_cycles_per_op(snapdragon_bundle, tmp_path):
    result = run_cli("profile", snapdragon_bundle, "--backend", "emulator", "--chipset", "snapdragon-8-gen-2",
                     "-o", tmp_path)
    assert result.exit_code == 0, result.output
    data = read_profile(tmp_path)
    assert data["backend"] == "emulator" and "787.2 MHz" in data["device"]
    for component, summary in data["components"].items():
        rows = [row for row in data["rows"] if row["component"] == component]
        assert summary["total_ms"] == pytest.approx(sum(row["time_ms"] for row in rows), rel=1e-3)
        assert len(rows) > 20 and all(row["time_ms"] >= 0 for row in rows)
    unet_blocks = {row["block"] for row in data["rows"] if row["component"] == "unet"}
    assert {"down_blocks.0.resnets.0", "up_blocks.1.attentions.1"} <= unet_blocks  # QNN keeps the module scopes
    assert "Conv" in {row["op_type"] for row in data["rows"]}
    assert (tmp_path / "profile.html").read_text().count("<img") >= 3


def test_estimate_takes_the_branch_that_the_input_shapes_choose(tmp_path):
    """An If on shape arithmetic (torch exports `if x.shape[0] > 2:` that way) is costed as the branch it takes at the
    given shapes, as the compiler folds it: the same estimate as a graph of that branch alone. An If on data stays
    named as not costed (the test above)."""
    weight = numpy_helper.from_array(np.full((64, 64), 0.01, np.float32), "w")
    taken = {"then": [helper.make_node("MatMul", ["x", "w"], ["scores"]), helper.make_node("Softmax", ["scores"], ["a"])],
             "else": [helper.make_node("Neg", ["x"], ["a"])]}
    branches = {name: helper.make_graph(nodes, name, [], [helper.make_tensor_value_info("a", TensorProto.FLOAT, None)])
                for name, nodes in taken.items()}
    threshold = numpy_helper.from_array(np.array(2, np.int64), "two")
    shape_test = [helper.make_node("Shape", ["x"], ["shape"]),
                  helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
                  helper.make_node("Greater", ["batch", "two"], ["large"]),
                  helper.make_node("If", ["large"], ["chosen"], then_branch=branches["then"], else_branch=branches["else"])]

    def save(name: str, nodes: list, batch: str | int) -> Path:
        graph = helper.make_graph([*nodes, helper.make_node("Sigmoid", ["chosen" if nodes[-1].op_type == "If" else "a"],
                                                            ["y"])], name,
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 64])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                  [weight, threshold, numpy_helper.from_array(np.array(0, np.int64), "zero")])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), tmp_path / f"{name}.onnx")
        return tmp_path / f"{name}.onnx"

    dynamic = save("dynamic", shape_test, "N")

    def estimate(path: Path, *options: str) -> dict:
        result = run_cli("estimate", path, "--chipset", "snapdragon-8-gen-3", "--precision", "w8a16", "--json", *options)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    for batch, branch, options in ((8, "then", ["--input-shape", "x=8,64"]), (1, "else", ["--input-shape", "x=1,64"]),
                                   (1, "else", [])):
        given = estimate(dynamic, *options)
        assert given["not_costed"] == {}
        assert given["total_ms"] == estimate(save(f"{branch}_alone", taken[branch], batch))["total_ms"]


class CausalMix(torch.nn.Module):
    """Tokens mixed under a causal mask that the module computes from their count alone (as attention masks are)."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(x.shape[1])
        causal = (positions[:, None] >= positions[None, :]).to(x.dtype)  # [tokens, tokens]
        return self.linear(causal @ x)


def test_estimate_reads_a_torch_export_graph_at_the_shapes_given(tmp_path):
    """torch.export (torch.onnx's default exporter) annotates the values of a dynamic graph with its own symbols for
    the dynamic dimensions, also those of the shape arithmetic that the estimate folds: the values computed at the
    given shapes stand, and the graph estimates as it does without the annotations."""
    path, auto = tmp_path / "annotated.onnx", torch.export.Dim.AUTO
    torch.onnx.export(CausalMix().eval(), (torch.randn(2, 8, 8),), path, input_names=["x"], dynamo=True,
                      dynamic_shapes=({0: auto, 1: auto, 2: auto},))
    model = onnx.load(path)
    assert any(dim.dim_param for value in model.graph.value_info for dim in value.type.tensor_type.shape.dim)
    del model.graph.value_info[:]
    onnx.save(model, tmp_path / "plain.onnx")
    annotated, plain = (json.loads(run_cli("estimate", tmp_path / f"{name}.onnx", "--precision", "w8a16", "--json",
                                           "--input-shape", "x=2,16,8").stdout) for name in ("annotated", "plain"))
    assert plain["not_costed"] == {}
    assert annotated == {**plain, "model": str(path)}


def test_estimate_folds_shape_arithmetic_on_scalar_initializers(tmp_path):
    """torch.export writes the constants of shape arithmetic (`x.shape[2] / 2`) as scalar initializers of any type,
    where torch's TorchScript exporter writes Constant nodes: both are folded alike, and the MatMul after the Reshape
    they shape is costed."""
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "last"], ["width"], axis=0),
             helper.make_node("Cast", ["width"], ["width_float"], to=TensorProto.FLOAT),
             helper.make_node("Div", ["width_float", "two"], ["half_float"]),
             helper.make_node("Cast", ["half_float"], ["half"], to=TensorProto.INT64),
             helper.make_node("Concat", ["leading", "half"], ["folded_shape"], axis=0),
             helper.make_node("Reshape", ["x", "folded_shape"], ["folded"]),
             helper.make_node("MatMul", ["folded", "w"], ["y"])]
    initializers = [numpy_helper.from_array(np.array([2], np.int64), "last"),
                    numpy_helper.from_array(np.array([-1, 2], np.int64), "leading"),
                    numpy_helper.from_array(np.full((16, 32), 0.1, np.float32), "w")]
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    estimates = {}
    for form, extra_nodes, extra_initializers in (("initializer", [], [two]),
                                                  ("constant", [helper.make_node("Constant", [], ["two"], value=two)], [])):
        graph = helper.make_graph([*extra_nodes, *nodes], form, [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                             [1, 4, "width"])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                  [*initializers, *extra_initializers])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), tmp_path / f"{form}.onnx")
        result = run_cli("estimate", tmp_path / f"{form}.onnx", "--precision", "w8a16", "--json", "--input-shape",
                         "x=1,4,32")
        estimates[form] = json.loads(result.stdout)
    assert estimates["constant"]["not_costed"] == {}
    assert estimates["initializer"] == {**estimates["constant"], "model": str(tmp_path / "initializer.onnx")}
