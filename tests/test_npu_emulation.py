"""Compiled NPU models executed in onnxruntime-qnn's HTP emulation and matched against the CPU."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import warnings

import numpy as np
import onnx
import pytest
import torch

from edgefusion_export.bundle.manifest import load_bundle
from edgefusion_export.export.group_norm import channels_last_group_norm, channels_last_group_norms
from edgefusion_export.export.onnx_export import OPSET, simplify
from edgefusion_export.metrics import psnr_db, sqnr_db
from edgefusion_export.quantize import qdq
from edgefusion_export.quantize.qdq import multiply_weight_scale
from edgefusion_export.runtime.pipeline import Noise, Text2ImagePipeline
from edgefusion_export.runtime.sessions import cpu_session, htp_session
from edgefusion_export.stages import duration
from edgefusion_export.targets import snapdragon
from edgefusion_export.targets.chipsets import chipset
from edgefusion_export.targets.snapdragon import inspect_context_model, prepared_target

from .conftest import CHIPSETS, TINY_SIZE, compile_args, run_cli
from .test_bad_input import assert_clean_error

SIZE = 8


class ResnetHead(torch.nn.Module):
    """Conv -> GroupNorm -> SiLU -> Conv, the head of every resnet block."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.norm, self.conv2 = torch.nn.Conv2d(4, 32, 3, padding=1), torch.nn.GroupNorm(8, 32), \
            torch.nn.Conv2d(32, 32, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.nn.functional.silu(self.norm(self.conv1(x))))


class ConvSilu(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(4, 32, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.silu(self.conv(x))


def emulated_sqnr(module: torch.nn.Module, shape: tuple[int, ...], folder, channels_last: bool = False,
                  simplified: bool = True) -> float:
    """Export `module` as the compiler does (with or without the channels-last GroupNorm; simplified with the NPU
    rewrites, or as traced), W8A16-quantize it with the project's quantizer, run it on the HTP backend (no CPU
    fallback) and return its SQNR against the same QDQ graph on the CPU with exact QDQ arithmetic."""
    rng = np.random.default_rng(1)
    exported, quantized_path = folder / "exported" / "float.onnx", folder / "w8a16.onnx"
    exported.parent.mkdir(parents=True)
    with warnings.catch_warnings(), channels_last_group_norms(module) if channels_last else contextlib.nullcontext():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.randn(shape),), str(exported), input_names=["x"],
                          output_names=["y"], opset_version=OPSET, dynamo=True, external_data=False, verbose=False)
    float_path = simplify(exported, folder)[0] if simplified else exported
    samples = [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(8)]
    qdq.quantize_w8a16(float_path, samples, quantized_path)
    feed = {"x": rng.standard_normal(shape).astype(np.float32)}
    reference = cpu_session(quantized_path, exact=True).run(None, feed)[0]
    emulated = htp_session(quantized_path, chipset("snapdragon-8-gen-3").htp_target, cpu_fallback=False).run(None, feed)[0]
    return sqnr_db(reference, emulated)


def test_channels_last_group_norm_computes_on_the_htp_backend_where_torchs_form_does_not(tmp_path):
    """torch exports group_norm as Reshape (N, G, -1) -> InstanceNormalization -> Reshape -> Mul -> Add, and
    onnxsim drops the Mul and Add of an untrained norm (ones and zeros). Followed by SiLU and a Conv with 16-bit
    activations, QNN's HTP backend computes garbage for it (~0 dB; correct with
    uint8 activations, or without the SiLU or the Conv). The EP hands QNN a faithful graph (its JSON dump has the
    same ops and encodings), so the fault is inside QNN's HTP backend, whose graph preparation also writes the
    context binaries that phones load. The channels-last form the compiler exports instead is correct."""
    assert emulated_sqnr(ResnetHead(), (1, 4, SIZE, SIZE), tmp_path / "torch") < 5.0
    assert emulated_sqnr(ResnetHead(), (1, 4, SIZE, SIZE), tmp_path / "channels_last", channels_last=True) >= 55.0


def test_silu_on_a_narrow_tall_image_is_split_so_the_htp_backend_computes_it(tmp_path):
    """QNN fuses x * Sigmoid(x) into a SiLU kernel that computes garbage with 16-bit activations at most one tile
    (8) wide and more than one tall, the portrait shapes of small UNet levels (measured -1.7 dB at 16x8, 80 dB at
    16x9 and 8x16). The simplify pass writes those SiLUs in a form QNN does not fuse (77.5 dB)."""
    tall = (1, 4, 2 * SIZE, SIZE)
    assert emulated_sqnr(ConvSilu(), tall, tmp_path / "traced", simplified=False) < 5.0
    assert emulated_sqnr(ConvSilu(), tall, tmp_path / "simplified") >= 70.0


@pytest.mark.parametrize("shape", [(2, 32, 5, 7), (1, 64, 12)])
def test_channels_last_group_norm_equals_torch(shape):
    norm = torch.nn.GroupNorm(8, shape[1])
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(shape) * 3 + 1
    expected = norm(x)
    with channels_last_group_norms(norm) as count:
        assert count == 1
        actual = norm(x)
    torch.testing.assert_close(actual, expected, atol=2e-6, rtol=0)
    torch.testing.assert_close(channels_last_group_norm(x, 8, None, None, 1e-5),
                               torch.nn.functional.group_norm(x, 8), atol=2e-6, rtol=0)
    assert "forward" not in vars(norm)  # restored after the block


PROMPT = "a lighthouse on a cliff at dawn"


@pytest.mark.parametrize("chip", CHIPSETS)
def test_npu_emulator_draws_the_cpu_image_with_each_chipsets_own_binary(snapdragon_bundle, chip):
    bundle = load_bundle(snapdragon_bundle)
    cpu = Text2ImagePipeline.from_bundle(bundle)
    npu = Text2ImagePipeline.from_bundle(bundle, backend="npu-emulator", chipset=chip)
    noise = Noise.seeded(5, cpu.plan)
    # measured 67.4 dB on 8 Gen 2, 8 Gen 3 and 8 Elite (the W8A16 UNet with torch's GroupNorm form: ~0 dB)
    assert psnr_db(cpu(PROMPT, noise).image, npu(PROMPT, noise).image) >= 60
    assert set(npu.providers().values()) == {"QNNExecutionProvider"}
    profile = chipset(chip)
    for component, model in npu.models.items():
        assert model.parent == snapdragon_bundle / "qnn" / chip
        binaries = inspect_context_model(model).context_binaries
        assert [prepared_target(model.parent / name) for name in binaries] == [f"{profile.soc}/{profile.hexagon_arch}"]


def test_each_chipset_has_its_own_binaries(snapdragon_bundle):
    manifest = load_bundle(snapdragon_bundle).manifest
    for component in manifest["components"].values():
        digests = {manifest["files"][binary]["sha256"] for entry in component["compiled"].values()
                   for binary in entry["offline"]["context_binaries"]}
        assert len(digests) == len(CHIPSETS)
        assert sorted(entry["offline"]["prepared_for"][0] for entry in component["compiled"].values()) == \
            ["SM8550/v73", "SM8650/v75", "SM8750/v79"]


def test_verification_is_recorded_per_component_and_chipset(snapdragon_bundle):
    manifest = load_bundle(snapdragon_bundle).manifest
    measured = {"text_encoder": 60.6, "unet": 54.2, "vae_decoder": 66.1}  # dB against the CPU, every chipset
    for name, component in manifest["components"].items():
        for entry in component["compiled"].values():
            emulated = entry["emulated"]
            assert emulated["sqnr_vs_cpu_db"] >= measured[name] - 5
            assert emulated["samples"] == (2 if name == "unet" else 1)  # one held-out image's calls
            labels = [call["sample"] for call in emulated["calls"]]
            assert labels == (["t=999", "t=499"] if name == "unet" else ["call 1"])  # each UNet step on its own
            assert emulated["sqnr_vs_cpu_db"] == min(call["sqnr_vs_cpu_db"] for call in emulated["calls"])
            assert emulated.get("size") == (None if name == "text_encoder" else f"{TINY_SIZE}x{TINY_SIZE}")
    unet_vs_float = [entry["emulated"]["sqnr_vs_float_db"] for entry in manifest["components"]["unet"]["compiled"].values()]
    assert all(30 <= value <= 45 for value in unet_vs_float)  # W8A16 error (measured 37.2), not emulation error


def test_verify_npu_modes_check_what_they_say_and_record_why_not_the_others(snapdragon_bundle, cache_dir, tmp_path,
                                                                            monkeypatch):
    """`--verify-npu quantized` runs the W8A16 UNet's calls and records a reason for the FP16 components; `auto` adds
    the FP16 components predicted under AUTO_VERIFY_SECONDS (here set between the text encoder's and the decoder's
    predictions, as at 512x512: 11 s and 31.5 min); `off` records a reason for every component. The checks come from
    the session build's cache: one stage per call."""
    report = json.loads((snapdragon_bundle / "build_report.json").read_text())
    predicted = {name: chips["snapdragon-8-gen-3"]["emulated"]["predicted_seconds"] for name, chips in report["npu"].items()}
    assert predicted["text_encoder"] < predicted["vae_decoder"]
    monkeypatch.setattr(snapdragon, "AUTO_VERIFY_SECONDS", (predicted["text_encoder"] + predicted["vae_decoder"]) / 2)
    too_long = (f"not quantized, and its check takes about {duration(predicted['vae_decoder'])} per chipset: --verify-npu "
                f"auto checks those predicted under {duration(snapdragon.AUTO_VERIFY_SECONDS)}, --verify-npu all adds it")
    not_quantized = "not quantized: --verify-npu quantized checks the quantized components, --verify-npu all adds it"
    for mode, skipped in (("quantized", {"text_encoder": not_quantized, "vae_decoder": not_quantized}),
                          ("auto", {"vae_decoder": too_long}),
                          ("off", dict.fromkeys(predicted, "--verify-npu off"))):
        result = run_cli(*compile_args(tmp_path / mode, cache_dir, "--preset", "tiny", "--target", "snapdragon",
                                       "--verify-npu", mode))
        assert result.exit_code == 0, result.output
        manifest = load_bundle(tmp_path / mode).manifest
        for name, component in manifest["components"].items():
            emulated = component["compiled"]["snapdragon-8-gen-3"]["emulated"]
            if name in skipped:
                assert emulated == {"skipped": skipped[name]}
            else:
                assert [call["sample"] for call in emulated["calls"]] == (["t=999", "t=499"] if name == "unet" else ["call 1"])


def test_a_wrong_quantization_scale_in_the_npu_model_fails_the_gate(snapdragon_bundle, cache_dir, tmp_path, monkeypatch):
    """The NPU compile receives a UNet with one weight's Q/DQ scale off by 4x; the portable model stays right."""
    compile_for_chipset = snapdragon.compile_for_chipset

    def compile_a_broken_unet(model_path, chip, folder, allow_cpu_fallback, mode):
        if model_path.name == "unet.onnx":
            model = onnx.load(str(model_path))
            multiply_weight_scale(model, 4.0)
            (tmp_path / "broken").mkdir(exist_ok=True)
            model_path = tmp_path / "broken" / "unet.onnx"
            onnx.save(model, str(model_path))
        return compile_for_chipset(model_path, chip, folder, allow_cpu_fallback, mode)

    monkeypatch.setattr(snapdragon, "compile_for_chipset", compile_a_broken_unet)
    # --allow-cpu-fallback changes the QNN stages' cache key, so they run again with the broken UNet
    result = run_cli(*compile_args(tmp_path / "bundle", cache_dir, "--preset", "tiny", "--target", "snapdragon",
                                   "--allow-cpu-fallback"))
    assert_clean_error(result, "the compiled unet for Snapdragon 8 Gen 3 computes other numbers than the CPU",
                       "--min-npu-sqnr 35", after_progress=True)
    assert not (tmp_path / "bundle").exists()


def test_generate_with_the_npu_emulator_cli(snapdragon_bundle, tmp_path):
    result = run_cli("generate", snapdragon_bundle, PROMPT, "--backend", "npu-emulator", "--chipset",
                     "snapdragon-8-gen-2", "-o", tmp_path / "npu.png")
    assert result.exit_code == 0, result.output
    for component in ("text_encoder", "unet", "vae_decoder"):
        assert f"{component}: QNNExecutionProvider" in result.stderr
        assert f"qnn/snapdragon-8-gen-2/{component}.snapdragon-8-gen-2.onnx" in result.stderr
    assert (tmp_path / "npu.png").is_file()
    assert_clean_error(run_cli("generate", snapdragon_bundle, PROMPT, "--backend", "npu-emulator", "--chipset",
                               "snapdragon-8-gen-1", "-o", tmp_path / "x.png"), "no NPU models for snapdragon-8-gen-1",
                       "--chipset snapdragon-8-gen-1")


def test_qnn_prints_nothing_on_stdout(snapdragon_bundle, tmp_path):
    """stdout is the command's output (benchmarks print JSON there); the HTP backend announces itself when it loads."""
    result = subprocess.run([sys.executable, "-m", "edgefusion_export.cli", "generate", str(snapdragon_bundle), PROMPT,
                             "--backend", "npu-emulator", "-o", str(tmp_path / "npu.png")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and "LIBNATIVE" in result.stderr


def test_npu_emulator_needs_a_snapdragon_bundle(tiny_bundle, tmp_path):
    assert_clean_error(run_cli("generate", tiny_bundle, PROMPT, "--backend", "npu-emulator", "-o", tmp_path / "x.png"),
                       "no compiled NPU models", "--target snapdragon")
    assert_clean_error(run_cli("generate", tiny_bundle, PROMPT, "--chipset", "snapdragon-8-gen-3", "-o",
                               tmp_path / "x.png"), "--backend npu-emulator only")

