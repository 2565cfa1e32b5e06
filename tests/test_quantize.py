"""W8A16 quantization on the tiny preset: recorder, recipes, fallback and gates."""

import json

import numpy as np
import onnx
import pytest

from edgefusion_export.bundle.manifest import load_bundle
from edgefusion_export.graphs import load_full
from edgefusion_export.metrics import sqnr_db
from edgefusion_export.quantize import calibration, qdq
from edgefusion_export.quantize.recipes import QuantizeSettings, quantize_component
from edgefusion_export.runtime.pipeline import Noise, Text2ImagePipeline
from edgefusion_export.runtime.scheduler import lcm_step

from .conftest import TINY_SIZE, compile_args, run_cli
from .test_bad_input import assert_clean_error


@pytest.fixture(scope="module")
def float_pipeline(tiny_bundle):
    return Text2ImagePipeline.from_bundle(load_bundle(tiny_bundle))


@pytest.fixture(scope="module")
def recorded(float_pipeline, tiny_bundle):
    models = {name: tiny_bundle / f"{name}.onnx" for name in ("text_encoder", "unet", "vae_decoder")}
    pipeline = calibration.RecordingPipeline(models, float_pipeline.plan, float_pipeline.tokenizer)
    prompts = calibration.read_prompts(None)
    calibration_prompts, evaluation_prompts = calibration.split_prompts(prompts, 16, 4)
    return (calibration.record(pipeline, calibration_prompts, 0), calibration.record(pipeline, evaluation_prompts, 100),
            calibration_prompts, evaluation_prompts)


def test_recorder_sees_the_models_own_timesteps_and_noise(recorded, float_pipeline):
    calibration_set, _, prompts, _ = recorded
    unet = calibration_set.samples["unet"]
    assert len(calibration_set.samples["text_encoder"]) == len(prompts) == 16
    assert len(unet) == 2 * len(prompts) and len(calibration_set.samples["vae_decoder"]) == len(prompts)
    assert [int(feed["timestep"][0]) for feed in unet[:4]] == [999, 499, 999, 499]
    first, second = unet[0], unet[1]
    noise = Noise.seeded(0, float_pipeline.plan)
    np.testing.assert_array_equal(first["latent"], noise.latent)
    eps = float_pipeline.run("unet", first)
    expected_second, denoised = lcm_step(float_pipeline.plan.steps[0], first["latent"], eps, noise.step_noise[0])
    np.testing.assert_allclose(second["latent"], expected_second, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(second["text_embeddings"], first["text_embeddings"])
    assert not np.allclose(second["latent"], denoised)  # the re-injected noise is really there


def test_calibration_and_held_out_prompts_are_disjoint(recorded, tmp_path):
    calibration_set, _, calibration_prompts, evaluation_prompts = recorded
    assert not set(calibration_prompts) & set(evaluation_prompts)
    calibration_set.save(tmp_path, "c")
    reloaded = calibration.Recording.load(tmp_path, "c")
    np.testing.assert_array_equal(reloaded.samples["unet"][3]["latent"], calibration_set.samples["unet"][3]["latent"])


def test_bounded_attention_mask_keeps_the_float_text_encoder_exact(tiny_bundle, tmp_path):
    model = load_full(tiny_bundle / "text_encoder.onnx")
    assert qdq.bound_attention_masks(model) == 1
    onnx.save(model, str(tmp_path / "bounded.onnx"))
    import onnxruntime

    ids = np.array([list(range(49406, 49408)) + list(range(1, 76))], dtype=np.int32)
    original = onnxruntime.InferenceSession(str(tiny_bundle / "text_encoder.onnx")).run(None, {"input_ids": ids})[0]
    bounded = onnxruntime.InferenceSession(str(tmp_path / "bounded.onnx")).run(None, {"input_ids": ids})[0]
    assert sqnr_db(original, bounded) > 80


def test_text_encoder_quantizes_well_only_with_the_bounded_mask(recorded, tiny_bundle, tmp_path):
    calibration_set, evaluation_set, _, _ = recorded
    float_path = tiny_bundle / "text_encoder.onnx"
    naive = qdq.quantize_w8a16(float_path, calibration_set.samples["text_encoder"], tmp_path / "naive" / "te.onnx")
    info = quantize_component(float_path, calibration_set.samples["text_encoder"], evaluation_set.samples["text_encoder"],
                              tmp_path, "w8a16", QuantizeSettings())
    naive_sqnr = qdq.evaluate(float_path, naive, evaluation_set.samples["text_encoder"]).sqnr_db
    assert info.attention_masks_bounded == 1
    assert info.fidelity["sqnr_db"] >= 30 > naive_sqnr + 10


def test_fallback_keeps_the_most_sensitive_layers_in_float(recorded, tiny_bundle, tmp_path):
    calibration_set, evaluation_set, _, _ = recorded
    plain = quantize_component(tiny_bundle / "unet.onnx", calibration_set.samples["unet"], evaluation_set.samples["unet"],
                               tmp_path / "plain", "w8a16", QuantizeSettings())
    target = plain.fidelity["sqnr_db"] + 0.05
    mixed = quantize_component(tiny_bundle / "unet.onnx", calibration_set.samples["unet"], evaluation_set.samples["unet"],
                               tmp_path / "mixed", "w8a16-mixed", QuantizeSettings(min_sqnr_db=target))
    assert len(mixed.attempts) > 1
    assert mixed.kept_float and all(item["params"] > 0 and item["error_contribution"] > 0 for item in mixed.kept_float)
    assert mixed.fidelity["sqnr_db"] >= plain.fidelity["sqnr_db"]
    assert 0 < mixed.float_fraction <= 0.25
    quantized = onnx.load(str(tmp_path / "mixed" / "unet.onnx"), load_external_data=False)
    kept = {item["node"] for item in mixed.kept_float}
    assert kept <= {node.name for node in quantized.graph.node if node.op_type in ("Conv", "Gemm", "MatMul")}
    assert set(mixed.fidelity["per_timestep_sqnr_db"]) == {"999", "499"}


@pytest.mark.parametrize("recipe, expected", [
    ("w8a16", {"text_encoder": "w8a16", "unet": "w8a16", "vae_decoder": "w8a16"}),
    ("edgefusion", {"text_encoder": "fp16", "unet": "w8a16", "vae_decoder": "fp16"}),
    ("edgefusion-w8a16-decoder", {"text_encoder": "fp16", "unet": "w8a16", "vae_decoder": "w8a16"}),
    ("w8a16-mixed", {"text_encoder": "w8a16-mixed", "unet": "w8a16-mixed", "vae_decoder": "w8a16-mixed"}),
])
def test_recipes_build_bundles_that_run(recipe, expected, tiny_bundle, cache_dir, tmp_path):
    output = tmp_path / recipe
    result = run_cli(*compile_args(output, cache_dir, "--preset", "tiny", "--precision", recipe, "--min-sqnr", "25"))
    assert result.exit_code == 0, result.output
    manifest = load_bundle(output).manifest
    assert {name: c["precision"] for name, c in manifest["components"].items()} == expected
    for name, component in manifest["components"].items():
        if component["precision"].startswith("w8a16"):
            assert component["fidelity"]["sqnr_db"] >= 25
            assert component["io_quantization"]  # the Q/DQ parameters at the graph boundary
            graph = onnx.load(str(output / component["file"]), load_external_data=False)
            assert any(node.op_type == "QuantizeLinear" for node in graph.graph.node)
    assert set(manifest["components"]["unet"]["fidelity"]["per_timestep_sqnr_db"]) == {"999", "499"}
    end_to_end = manifest["sizes"][f"{TINY_SIZE}x{TINY_SIZE}"]["fidelity"]
    assert len(end_to_end["psnr_db"]) == 2 and min(end_to_end["psnr_db"]) >= 20
    assert 0.5 < end_to_end["prompt_sensitivity_ratio"] < 2
    assert (output / "fidelity.png").is_file()
    generated = run_cli("generate", output, "a red fox", "-o", tmp_path / "fox.png")
    assert generated.exit_code == 0, generated.output
    report = json.loads((output / "build_report.json").read_text())
    assert report["end_to_end"][f"{TINY_SIZE}x{TINY_SIZE}"]["ssim"]


def test_sqnr_gate_fails_with_a_clear_error(tiny_bundle, cache_dir, tmp_path):
    result = run_cli(*compile_args(tmp_path / "out", cache_dir, "--preset", "tiny", "--precision", "edgefusion",
                                   "--min-sqnr", "80"))
    assert_clean_error(result, "unet", "--min-sqnr 80", after_progress=True)
    assert not (tmp_path / "out").exists()


def test_image_and_conditioning_gates_fail_with_clear_errors(tiny_bundle, cache_dir, tmp_path):
    psnr = run_cli(*compile_args(tmp_path / "a", cache_dir, "--preset", "tiny", "--precision", "edgefusion",
                                 "--min-sqnr", "25", "--min-psnr", "200"))
    assert_clean_error(psnr, "PSNR", "--min-psnr", after_progress=True)
    conditioning = run_cli(*compile_args(tmp_path / "b", cache_dir, "--preset", "tiny", "--precision", "edgefusion",
                                         "--min-sqnr", "25", "--min-prompt-sensitivity", "5"))
    assert_clean_error(conditioning, "prompt conditioning", after_progress=True)


def test_missing_calibration_prompt_file(tmp_path):
    result = run_cli("compile", "--preset", "tiny", "--height", 64, "--width", 64, "--precision", "w8a16",
                     "--calibration-prompts", tmp_path / "none.txt", "-o", tmp_path / "out", "--cache-dir", tmp_path / "c")
    assert_clean_error(result, "calibration prompt file")


def test_custom_calibration_prompt_file(tiny_bundle, cache_dir, tmp_path):
    prompts = tmp_path / "prompts.tsv"
    rows = [f"prompt number {index} of a {color} bird" for index, color in enumerate(["red", "blue", "green", "gold"] * 3)]
    prompts.write_text("Prompt\tCategory\n" + "".join(f"{row}\tAnimals\n" for row in rows))
    output = tmp_path / "bundle"
    result = run_cli(*compile_args(output, cache_dir, "--preset", "tiny", "--precision", "edgefusion",
                                   "--calibration-prompts", prompts, "--calibration-size", "6", "--min-sqnr", "20"))
    assert result.exit_code == 0, result.output
    report = json.loads((output / "build_report.json").read_text())
    calibrate = next(stage for stage in report["stages"] if stage["name"] == "calibrate")
    assert calibrate["info"]["calibration_prompts"] == rows[0::2]
    assert calibrate["info"]["evaluation_prompts"] == rows[1::2][:4]
    assert report["options"]["calibration_prompts"] == str(prompts)


def test_the_edgefusion_recipe_falls_back_by_itself_when_plain_w8a16_misses_the_gate(tiny_bundle, cache_dir, tmp_path):
    """The default Snapdragon recipe keeps the most sensitive UNet layers in float instead of stopping at the gate."""
    plain = run_cli(*compile_args(tmp_path / "plain", cache_dir, "--preset", "tiny", "--target", "snapdragon"))
    assert plain.exit_code == 0, plain.output
    plain_sqnr = load_bundle(tmp_path / "plain").manifest["components"]["unet"]["fidelity"]["sqnr_db"]
    target = f"{plain_sqnr + 0.2:.2f}"  # just out of plain W8A16 reach (one or two float layers give +0.2-0.4 dB here)
    result = run_cli(*compile_args(tmp_path / "bundle", cache_dir, "--preset", "tiny", "--target", "snapdragon",
                                   "--min-sqnr", target))
    assert result.exit_code == 0, result.output
    unet = load_bundle(tmp_path / "bundle").manifest["components"]["unet"]
    assert unet["precision"] == "w8a16-mixed" and unet["kept_float"]
    assert unet["fidelity"]["sqnr_db"] >= float(target) > unet["attempts"][0]["sqnr_db"]
    said = " ".join(result.stderr.split())  # the console wraps long lines
    assert f"{len(unet['kept_float'])} layers kept float (" in said and f"plain W8A16 reached {plain_sqnr:.1f} dB" in said
    assert unet["compiled"]["snapdragon-8-gen-3"]["offline"]["partitions"] == 1  # float layers stay on the NPU
