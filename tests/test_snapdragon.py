"""The Snapdragon target: offline QNN compile (onnxruntime-qnn, runs here), rewrites, and AI Hub through a fake."""

import json

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgefusion_export.bundle.manifest import load_bundle
from edgefusion_export.errors import UserError
from edgefusion_export.metrics import sqnr_db
from edgefusion_export.runtime.sessions import htp_session
from edgefusion_export.export.npu_rewrites import make_npu_friendly
from edgefusion_export.targets import aihub
from edgefusion_export.targets.chipsets import chipset, load_chipsets
from edgefusion_export.targets.snapdragon import compile_for_chipset, finalization_mode

from .conftest import CHIPSETS, compile_args, run_cli
from .fake_qai_hub import FakeHub
from .test_bad_input import assert_clean_error

def test_profiles_are_valid_and_listed():
    chipsets = load_chipsets()
    assert {"snapdragon-8-gen-2", "snapdragon-8-gen-3", "snapdragon-8-elite"} <= set(chipsets)
    assert any(chip.hexagon_arch in ("v69", "v73") for chip in chipsets.values())
    assert chipset(None).name == "snapdragon-8-gen-3"
    result = run_cli("targets")
    assert result.exit_code == 0 and "SM8650" in result.stdout and "v75" in result.stdout
    assert "  snapdragon-8-gen-2: Samsung Galaxy S23, " in result.stdout  # a user finds the chipset by the phone


def test_every_component_is_one_npu_partition_for_each_chipset(snapdragon_bundle):
    manifest = load_bundle(snapdragon_bundle).manifest
    assert [chip["name"] for chip in manifest["target"]["chipsets"]] == list(CHIPSETS)
    assert manifest["target"]["qnn_sdk_version"].startswith("v2.")
    assert manifest["target"]["min_runtime"]["qnn_sdk"] == ".".join(manifest["target"]["qnn_sdk_version"][1:].split(".")[:2])
    for name, component in manifest["components"].items():
        assert (snapdragon_bundle / component["file"]).is_file()  # the portable model stays in the bundle
        assert set(component["compiled"]) == set(CHIPSETS)
        for chip_name, compiled in component["compiled"].items():
            offline = compiled["offline"]
            assert offline["partitions"] == 1 and offline["cpu_nodes"] == []
            assert offline["file"] in manifest["files"] and offline["context_binaries"]
            for binary in offline["context_binaries"]:
                assert binary in manifest["files"] and manifest["files"][binary]["size"] > 0
            graph = onnx.load(str(snapdragon_bundle / offline["file"]), load_external_data=False)
            assert [node.op_type for node in graph.graph.node].count("EPContext") == 1


def group_norm_model(path, with_unsupported_op: bool = False):
    rng = np.random.default_rng(0)
    channels = 32
    initializers = [numpy_helper.from_array((rng.standard_normal((channels, channels, 3, 3)) * 0.1).astype(np.float32), "w"),
                    numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32), "scale"),
                    numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32), "bias")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("GroupNormalization", ["c", "scale", "bias"], ["g"], num_groups=8, name="norm"),
             helper.make_node("Sigmoid", ["g"], ["y"], name="act")]
    if with_unsupported_op:
        nodes[-1] = helper.make_node("Sigmoid", ["g"], ["s"], name="act")
        nodes.append(helper.make_node("Det", ["s"], ["y"], name="determinant"))
    shape = [1, channels, 16, 16]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


def conv_model(path, channels: int, size: int, quantized: bool = False):
    if quantized:  # the weight as a W8A16 recipe writes it: uint8 behind a DequantizeLinear
        initializers = [numpy_helper.from_array(np.zeros((channels, channels, 3, 3), np.uint8), "w_q"),
                        numpy_helper.from_array(np.array(0.01, np.float32), "w_scale")]
        nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_scale"], ["w"], name="dq")]
    else:
        initializers, nodes = [numpy_helper.from_array(np.zeros((channels, channels, 3, 3), np.float32), "w")], []
    nodes.append(helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], name="conv"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), str(path))
    return path


def test_qnn_optimization_auto_spares_mode_3_for_graphs_with_huge_convolutions(tmp_path):
    vae_512 = conv_model(tmp_path / "big.onnx", 128, 512)  # 64 MiB per FP16 activation, like the VAE's last blocks
    vae_256 = conv_model(tmp_path / "small.onnx", 128, 256)  # 16 MiB
    assert finalization_mode(vae_512, "auto") == "1" and finalization_mode(vae_256, "auto") == "3"
    assert finalization_mode(vae_512, "3") == "3" and finalization_mode(vae_256, "2") == "2"
    w8a16_512 = conv_model(tmp_path / "quantized.onnx", 128, 512, quantized=True)  # mode 1 breaks quantized graphs
    assert finalization_mode(w8a16_512, "auto") == "3" and finalization_mode(w8a16_512, "1") == "2"


def test_group_norm_is_rewritten_with_parity_and_then_compiles_to_one_partition(tmp_path):
    original = group_norm_model(tmp_path / "gn.onnx")
    with pytest.raises(UserError, match="QNN could not compile gn"):
        compile_for_chipset(original, chipset(None), tmp_path, allow_cpu_fallback=False)
    model = onnx.load(str(original))
    assert make_npu_friendly(model) == {"group_norm": 1, "narrow_silu": 0, "identity_gather": 0}
    assert "GroupNormalization" not in {node.op_type for node in model.graph.node}
    rewritten = tmp_path / "rewritten.onnx"
    onnx.save(model, str(rewritten))
    x = np.random.default_rng(1).standard_normal((1, 32, 16, 16)).astype(np.float32)
    expected = onnxruntime.InferenceSession(str(original)).run(None, {"x": x})[0]
    actual = onnxruntime.InferenceSession(str(rewritten)).run(None, {"x": x})[0]
    np.testing.assert_allclose(actual, expected, atol=1e-5)
    compiled = compile_for_chipset(rewritten, chipset(None), tmp_path, allow_cpu_fallback=False)
    assert compiled.partitions == 1 and compiled.cpu_nodes == []


def pooled_gather_model(path, indices: np.ndarray):
    """Conv, then the pooled channels flattened and gathered back to 4-D, then moved channels-last: torch.export's
    `as_strided` as ConvNeXt's classifier has it."""
    channels = indices.size
    initializers = [numpy_helper.from_array(np.random.default_rng(0).standard_normal((channels, channels, 1, 1)).astype(np.float32), "w"),
                    numpy_helper.from_array(np.array([-1], np.int64), "flat"),
                    numpy_helper.from_array(indices.reshape(1, channels, 1, 1).astype(np.int64), "indices")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Reshape", ["c", "flat"], ["f"], name="flatten"),
             helper.make_node("Gather", ["f", "indices"], ["g"], axis=0, name="as_strided"),
             helper.make_node("Transpose", ["g"], ["y"], perm=[0, 2, 3, 1], name="to_channels_last")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 1, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1, channels])], initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def test_a_gather_of_every_entry_in_order_becomes_a_reshape_which_qnn_compiles_where_the_gather_aborts_it(tmp_path):
    original = pooled_gather_model(tmp_path / "gather.onnx", np.arange(16))
    with pytest.raises(UserError, match="SIGABRT"):  # onnxruntime's layout transformation for QNN asserts
        compile_for_chipset(original, chipset(None), tmp_path, allow_cpu_fallback=False)
    model = onnx.load(str(original))
    assert make_npu_friendly(model) == {"group_norm": 0, "narrow_silu": 0, "identity_gather": 1}
    assert [node.op_type for node in model.graph.node] == ["Conv", "Reshape", "Reshape", "Transpose"]
    rewritten = tmp_path / "rewritten.onnx"
    onnx.save(model, str(rewritten))
    x = np.random.default_rng(3).standard_normal((1, 16, 1, 1)).astype(np.float32)
    expected = onnxruntime.InferenceSession(str(original)).run(None, {"x": x})[0]
    np.testing.assert_array_equal(onnxruntime.InferenceSession(str(rewritten)).run(None, {"x": x})[0], expected)
    compiled = compile_for_chipset(rewritten, chipset(None), tmp_path, allow_cpu_fallback=False)
    assert compiled.partitions == 1 and compiled.cpu_nodes == []
    actual = htp_session(tmp_path / f"rewritten.{chipset(None).name}.onnx", chipset(None).htp_target).run(None, {"x": x})[0]
    assert sqnr_db(expected, actual) > 50
    reordered = onnx.load(str(pooled_gather_model(tmp_path / "reordered.onnx", np.arange(16)[::-1])))
    assert make_npu_friendly(reordered)["identity_gather"] == 0  # a Gather that reorders is a Gather
    positions = helper.make_graph(  # CLIP's position embedding: constants, which onnxsim folds as they are
        [helper.make_node("Gather", ["table", "ids"], ["p"]), helper.make_node("Add", ["x", "p"], ["y"])], "clip",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])],
        [numpy_helper.from_array(np.ones((4, 8), np.float32), "table"), numpy_helper.from_array(np.arange(4).reshape(1, 4), "ids")],
        value_info=[helper.make_tensor_value_info("table", TensorProto.FLOAT, [4, 8])])  # as torch.export types it
    assert make_npu_friendly(helper.make_model(positions))["identity_gather"] == 0


def test_the_8_elite_gen_5_profile_is_prepared_for_its_soc_and_runs_in_emulation(tmp_path):
    """QNN 2.51 prepares binaries for the SM8850 (v81, soc_model 87) and its HTP emulator runs them."""
    model_path = group_norm_model(tmp_path / "gn.onnx")
    model = onnx.load(str(model_path))
    make_npu_friendly(model)
    onnx.save(model, str(model_path))
    gen_5 = chipset("snapdragon-8-elite-gen-5")
    compiled = compile_for_chipset(model_path, gen_5, tmp_path, allow_cpu_fallback=False)
    assert compiled.prepared_for == ["SM8850/v81"] and compiled.partitions == 1
    x = np.random.default_rng(2).standard_normal((1, 32, 16, 16)).astype(np.float32)
    expected = onnxruntime.InferenceSession(str(model_path)).run(None, {"x": x})[0]
    actual = htp_session(tmp_path / f"gn.{gen_5.name}.onnx", gen_5.htp_target).run(None, {"x": x})[0]
    assert sqnr_db(expected, actual) > 50  # FP16 on the HTP: 68.7 dB measured on a plain Conv


def test_cpu_fallback_is_refused_unless_allowed_and_then_reported(tmp_path):
    model_path = group_norm_model(tmp_path / "det.onnx", with_unsupported_op=True)
    model = onnx.load(str(model_path))
    make_npu_friendly(model)
    onnx.save(model, str(model_path))
    with pytest.raises(UserError, match="CPU nodes .*Det.*--allow-cpu-fallback"):
        compile_for_chipset(model_path, chipset(None), tmp_path, allow_cpu_fallback=False)
    compiled = compile_for_chipset(model_path, chipset(None), tmp_path, allow_cpu_fallback=True)
    assert compiled.cpu_nodes == ["Det:determinant"] and compiled.partitions == 1


def test_chipset_options_are_checked(tmp_path):
    assert_clean_error(run_cli("compile", "--preset", "tiny", "--target", "snapdragon", "--chipset", "sd-9000",
                               "-o", tmp_path / "o"), "unknown chipset", "snapdragon-8-gen-3")
    assert_clean_error(run_cli("compile", "--preset", "tiny", "--chipset", "snapdragon-8-gen-3", "-o", tmp_path / "o"),
                       "--target snapdragon only")
    assert_clean_error(run_cli("compile", "--preset", "tiny", "--qnn-optimization", "1", "-o", tmp_path / "o"),
                       "--qnn-optimization", "--target snapdragon only")


@pytest.fixture
def fake_hub(monkeypatch):
    hub = FakeHub().install(monkeypatch)
    monkeypatch.setenv(aihub.TOKEN_ENV, "test-token")
    return hub


def aihub_compile(output, cache):
    return run_cli(*compile_args(output, cache, "--preset", "tiny", "--target", "snapdragon", "--aihub"))


def test_aihub_submit_wait_download(fake_hub, snapdragon_bundle, cache_dir, tmp_path):
    result = aihub_compile(tmp_path / "bundle", cache_dir)
    assert result.exit_code == 0, result.output
    assert len(fake_hub.submitted) == 3
    assert {call["device"].name for call in fake_hub.submitted} == {"Samsung Galaxy S24 (Family)"}
    assert all("--target_runtime qnn_context_binary" in call["options"] for call in fake_hub.submitted)
    manifest = load_bundle(tmp_path / "bundle").manifest
    for component in manifest["components"].values():
        entry = component["compiled"]["snapdragon-8-gen-3"]["aihub"]
        assert entry["job_id"] in fake_hub.jobs and entry["file"] in manifest["files"]
        assert (tmp_path / "bundle" / entry["file"]).read_bytes().startswith(b"QNN context binary")


def test_aihub_failed_job_gives_a_clear_error_and_is_resubmitted_next_time(fake_hub, snapdragon_bundle, tmp_path):
    fake_hub.next_outcome = "failed"
    assert_clean_error(aihub_compile(tmp_path / "bundle", tmp_path / "cache"), "AI Hub job j0000001 failed",
                       "not supported", after_progress=True)
    assert not (tmp_path / "bundle").exists()
    fake_hub.next_outcome = "success"
    assert aihub_compile(tmp_path / "bundle", tmp_path / "cache").exit_code == 0
    assert len(fake_hub.submitted) == 4  # the failed job is submitted again, then the other two


def test_aihub_timeout_then_resume_waits_for_the_same_job(fake_hub, snapdragon_bundle, tmp_path):
    fake_hub.next_outcome = "running"
    assert_clean_error(aihub_compile(tmp_path / "bundle", tmp_path / "cache"), "did not finish", "re-run",
                       after_progress=True)
    ledger = json.loads((tmp_path / "cache" / "aihub-jobs.json").read_text())
    assert list(ledger.values()) == ["j0000001"]
    fake_hub.outcomes["j0000001"] = "success"
    fake_hub.next_outcome = "success"
    assert aihub_compile(tmp_path / "bundle", tmp_path / "cache").exit_code == 0
    assert fake_hub.looked_up == ["j0000001"] and len(fake_hub.submitted) == 3


def test_aihub_job_without_a_target_model_gives_a_clear_error(fake_hub, snapdragon_bundle, tmp_path):
    fake_hub.target_models_missing = True
    assert_clean_error(aihub_compile(tmp_path / "bundle", tmp_path / "cache"), "AI Hub job j0000001 produced no target model",
                       "re-run", after_progress=True)
    assert not (tmp_path / "bundle").exists()


def test_the_fake_runs_the_installed_clients_wait_and_download(fake_hub, tmp_path):
    job = fake_hub.Client(config=fake_hub.ClientConfig(api_token="t")).submit_compile_job(
        model=str(group_norm_model(tmp_path / "m.onnx")), device=fake_hub.Device("Samsung Galaxy S24 (Family)"))
    fake_hub.outcomes[job.job_id] = "running"
    with pytest.raises(TimeoutError):  # qai_hub 0.56's Job.wait: a client-side time-out raises
        job.wait(timeout=60)
    fake_hub.outcomes[job.job_id] = "success"
    assert job.wait(timeout=60).success
    assert job.download_target_model(str(tmp_path / "model")) == str(tmp_path / "model.bin")  # extension appended
    fake_hub.outcomes[job.job_id] = "failed"
    assert job.download_target_model(str(tmp_path / "other.bin")) is None


def test_aihub_without_token_or_network(fake_hub, monkeypatch, snapdragon_bundle, tmp_path):
    monkeypatch.delenv(aihub.TOKEN_ENV)
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "missing.ini"))
    assert_clean_error(aihub_compile(tmp_path / "a", tmp_path / "cache"), "no Qualcomm AI Hub token",
                       "QAI_HUB_API_TOKEN", after_progress=True)
    monkeypatch.setenv(aihub.TOKEN_ENV, "test-token")
    fake_hub.network_down = True
    assert_clean_error(aihub_compile(tmp_path / "b", tmp_path / "cache"), "AI Hub job submission failed",
                       "Failed to establish", after_progress=True)


def test_fake_rejects_calls_the_real_client_would_reject(fake_hub):
    client = fake_hub.Client(config=fake_hub.ClientConfig(api_token="t"))
    with pytest.raises(TypeError):
        client.submit_compile_job(model="m.onnx", device=fake_hub.Device("x"), target_runtime="qnn")
    with pytest.raises(TypeError):
        fake_hub.Client(token="t")


def test_a_compiled_only_bundle_ships_no_portable_model(snapdragon_bundle, cache_dir, tmp_path):
    result = run_cli(*compile_args(tmp_path / "bundle", cache_dir, "--preset", "tiny", "--target", "snapdragon",
                                   *[arg for name in CHIPSETS for arg in ("--chipset", name)], "--ship", "compiled"))
    assert result.exit_code == 0, result.output
    manifest = load_bundle(tmp_path / "bundle").manifest
    assert all("file" not in component and len(component["compiled"]) == 3 for component in manifest["components"].values())
    assert not any(name.endswith((".onnx", ".onnx.data")) and not name.startswith("qnn/") for name in manifest["files"])
    full = sum(entry["size"] for entry in load_bundle(snapdragon_bundle).manifest["files"].values())
    assert sum(entry["size"] for entry in manifest["files"].values()) < full
    assert_clean_error(run_cli("generate", tmp_path / "bundle", "a cat", "-o", tmp_path / "x.png"),
                       "compiled NPU models only", "--backend npu-emulator", "--ship both")
    assert_clean_error(run_cli("compile", "--preset", "tiny", "--ship", "compiled", "-o", tmp_path / "cpu"),
                       "--ship compiled apply to --target snapdragon only")


def test_package_installs_only_what_the_phone_needs(snapdragon_bundle, tmp_path):
    app = tmp_path / "android_app"
    (app / "app").mkdir(parents=True)
    (app / "settings.gradle.kts").write_text('include(":core", ":app")\n')
    result = run_cli("package", snapdragon_bundle, app, "--chipset", "snapdragon-8-gen-2", "--ship", "compiled")
    assert result.exit_code == 0, result.output
    installed = load_bundle(app / "app" / "src" / "main" / "assets" / "bundle").manifest
    assert [chip["name"] for chip in installed["target"]["chipsets"]] == ["snapdragon-8-gen-2"]
    assert {name.split("/")[1] for name in installed["files"] if name.startswith("qnn/")} == {"snapdragon-8-gen-2"}
    assert all(set(component["compiled"]) == {"snapdragon-8-gen-2"} for component in installed["components"].values())
    assert_clean_error(run_cli("package", snapdragon_bundle, app, "--chipset", "snapdragon-8-gen-1"),
                       "no NPU models for snapdragon-8-gen-1")
    again = tmp_path / "again"
    (again / "app").mkdir(parents=True)
    (again / "settings.gradle.kts").write_text('include(":core", ":app")\n')
    installed_bundle = app / "app" / "src" / "main" / "assets" / "bundle"
    assert run_cli("package", installed_bundle, again, "--ship", "compiled").exit_code == 0  # already compiled-only
    assert load_bundle(again / "app" / "src" / "main" / "assets" / "bundle").manifest["files"] == installed["files"]
    assert_clean_error(run_cli("package", installed_bundle, again, "--ship", "portable"),
                       "--ship portable needs a bundle with the portable ONNX")
    portable = run_cli("package", snapdragon_bundle, again, "--ship", "portable")
    assert portable.exit_code == 0, portable.output
    shipped = load_bundle(again / "app" / "src" / "main" / "assets" / "bundle").manifest
    assert not any(name.startswith("qnn/") for name in shipped["files"]) and "unet.onnx.data" in shipped["files"]
    assert shipped["target"] == {"name": "snapdragon"} and all("compiled" not in c for c in shipped["components"].values())
