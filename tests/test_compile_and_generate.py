import json

import numpy as np
import onnx
from PIL import Image

from edgefusion_export.bundle.manifest import load_bundle, manifest_schema
from edgefusion_export.metrics import psnr_db
from edgefusion_export.runtime.pipeline import Noise, Text2ImagePipeline
from edgefusion_export.sources.reference import diffusers_image, torch_noise
from edgefusion_export.sources.resolve import resolve_source

from .conftest import TINY_SIZE, compile_args, run_cli

PROMPT = "a photo of an astronaut riding a horse"


def test_bundle_layout_and_manifest(tiny_bundle):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    assert manifest["schema_version"] == "2.0"
    assert set(manifest["components"]) == {"text_encoder", "unet", "vae_decoder"}
    assert manifest["sizes"] == {f"{TINY_SIZE}x{TINY_SIZE}": {
        "height": TINY_SIZE, "width": TINY_SIZE, "latent_shape": [1, 4, TINY_SIZE // 8, TINY_SIZE // 8],
        "graphs": {"text_encoder": "text_encoder", "unet": "unet", "vae_decoder": "vae_decoder"}}}
    unet = manifest["components"]["unet"]
    assert [spec["name"] for spec in unet["inputs"]] == ["latent", "timestep", "text_embeddings", "guidance_embedding"]
    assert unet["inputs"][0]["shape"] == [1, 4, TINY_SIZE // 8, TINY_SIZE // 8]
    assert manifest["components"]["text_encoder"]["inputs"][0] == {"name": "input_ids", "shape": [1, 77], "dtype": "int32"}
    assert manifest["components"]["vae_decoder"]["outputs"][0]["shape"] == [1, 3, TINY_SIZE, TINY_SIZE]
    sampling = manifest["sampling"]
    assert [step["timestep"] for step in sampling["steps"]] == [999, 499]
    assert len(sampling["guidance_embedding"]) == 256
    for name in ("text_encoder.onnx", "unet.onnx.data", "tokenizer/vocab.json"):
        entry = manifest["files"][name]
        assert entry["size"] == (tiny_bundle / name).stat().st_size
    assert (tiny_bundle / "build_report.json").is_file() and "build_report.json" not in manifest["files"]  # a record
    assert all(component["parity"]["sqnr_db"] >= 60 for component in manifest["components"].values())
    assert manifest["provenance"]["tool_versions"]["onnxruntime"]
    assert manifest_schema()["properties"]["schema_version"]
    assert not [p for p in tiny_bundle.parent.iterdir() if ".partial-" in p.name]


def test_rerun_uses_the_cache(tiny_bundle, cache_dir):
    result = run_cli(*compile_args(tiny_bundle, cache_dir, "--preset", "tiny"))
    assert result.exit_code == 0
    report = json.loads((tiny_bundle / "build_report.json").read_text())
    assert [stage["cached"] for stage in report["stages"]] == [True] * 6
    load_bundle(tiny_bundle)


def test_generate_matches_diffusers_lcm_pipeline(tiny_bundle, tmp_path):
    bundle = load_bundle(tiny_bundle)
    pipeline = Text2ImagePipeline.from_bundle(bundle)
    noise = torch_noise(7, pipeline.plan.latent_shape, len(pipeline.plan.steps))
    ours = pipeline(PROMPT, noise).image
    reference = diffusers_image(resolve_source(None, "tiny"), tiny_bundle / "tokenizer", PROMPT, 7, 2, 8.5,
                                TINY_SIZE, TINY_SIZE)
    assert reference.shape == ours.shape == (TINY_SIZE, TINY_SIZE, 3)
    assert reference.std() > 0.05  # a real picture, not a flat one
    # measured 134.6 dB (float32 rounding between onnxruntime and torch); a guidance embedding of w instead of
    # w - 1, or of zeros, scores about 50 dB, a different prompt about 48 dB
    assert psnr_db(reference, ours) >= 120


def test_generate_cli_writes_png_and_noise_round_trips(tiny_bundle, tmp_path):
    first = run_cli("generate", tiny_bundle, PROMPT, "--seed", 3, "-o", tmp_path / "a.png", "--save-noise", tmp_path / "n.npz")
    assert first.exit_code == 0, first.output
    again = run_cli("generate", tiny_bundle, PROMPT, "--noise", tmp_path / "n.npz", "-o", tmp_path / "b.png")
    other_seed = run_cli("generate", tiny_bundle, PROMPT, "--seed", 4, "-o", tmp_path / "c.png")
    assert again.exit_code == 0 and other_seed.exit_code == 0
    a, b, c = (np.asarray(Image.open(tmp_path / f"{name}.png")) for name in "abc")
    assert a.shape == (TINY_SIZE, TINY_SIZE, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 1
    noise = np.load(tmp_path / "n.npz")
    assert noise["latent"].shape == (1, 4, 8, 8) and noise["step_noise"].shape == (1, 1, 4, 8, 8)


def test_prompt_changes_the_image(tiny_bundle):
    pipeline = Text2ImagePipeline.from_bundle(load_bundle(tiny_bundle))
    noise = Noise.seeded(0, pipeline.plan)
    assert psnr_db(pipeline("a red apple", noise).image, pipeline("a blue car at night", noise).image) < 50  # measured 44.4


def test_inspect_prints_components_and_plan(tiny_bundle):
    result = run_cli("inspect", tiny_bundle)
    assert result.exit_code == 0
    for text in ("text_encoder", "unet", "vae_decoder", "999", "499", "guidance_embedding", "files verified"):
        assert text in result.stdout


def test_snapdragon_target_defaults_to_the_edgefusion_recipe_and_says_what_it_built(tiny_bundle, cache_dir, tmp_path):
    output = tmp_path / "snapdragon"
    result = run_cli(*compile_args(output, cache_dir, "--preset", "tiny", "--target", "snapdragon"))
    assert result.exit_code == 0, result.output
    manifest = load_bundle(output).manifest
    assert manifest["target"]["name"] == "snapdragon"
    assert [chip["name"] for chip in manifest["target"]["chipsets"]] == ["snapdragon-8-gen-3"]
    components = manifest["components"]
    assert {name: c["precision"] for name, c in components.items()} == {
        "text_encoder": "fp16", "unet": "w8a16", "vae_decoder": "fp16"}
    assert components["text_encoder"]["parity"]["sqnr_db"] >= 30 and components["vae_decoder"]["parity"]["sqnr_db"] >= 30
    assert components["unet"]["fidelity"]["sqnr_db"] >= 30
    report = json.loads((output / "build_report.json").read_text())
    cached = {s["name"]: s["cached"] for s in report["stages"] if s["name"].startswith(("export", "simplify"))}
    assert all(cached[f"{stage} {name}"] for stage in ("export", "simplify") for name in ("text_encoder", "vae_decoder"))
    # the FP16 components' QNN compiles start as soon as they are final, in the background, before calibration
    started = [line.split()[0:3] for line in result.output.splitlines() if "started in the background" in line]
    assert started == [["qnn", "text_encoder", "snapdragon-8-gen-3"], ["qnn", "vae_decoder", "snapdragon-8-gen-3"],
                       ["qnn", "unet", "snapdragon-8-gen-3"]]
    assert result.output.index("qnn vae_decoder snapdragon-8-gen-3") < result.output.index("calibrate")
    # the W8A16 UNet is traced with the channels-last GroupNorm; the fp32 and FP16 graphs keep torch's form
    ops = {bundle: {name: {node.op_type for node in onnx.load(str(bundle / f"{name}.onnx"), load_external_data=False).graph.node}
                    for name in ("unet", "vae_decoder")} for bundle in (output, tiny_bundle)}
    assert "InstanceNormalization" not in ops[output]["unet"] and "ReduceMean" in ops[output]["unet"]
    assert "InstanceNormalization" in ops[tiny_bundle]["unet"] and "InstanceNormalization" in ops[output]["vae_decoder"]
    pipeline = Text2ImagePipeline.from_bundle(load_bundle(output))
    reference = Text2ImagePipeline.from_bundle(load_bundle(tiny_bundle))
    noise = Noise.seeded(5, pipeline.plan)
    assert psnr_db(reference(PROMPT, noise).image, pipeline(PROMPT, noise).image) >= 50  # measured 57.4 (W8A16 UNet)


def test_package_installs_the_bundle_into_the_android_app(tiny_bundle, tmp_path):
    app = tmp_path / "android_app"
    (app / "app").mkdir(parents=True)
    (app / "settings.gradle.kts").write_text('include(":core", ":app")\n')
    result = run_cli("package", tiny_bundle, app)
    assert result.exit_code == 0, result.output
    installed = app / "app" / "src" / "main" / "assets" / "bundle"
    assert load_bundle(installed).manifest["files"] == load_bundle(tiny_bundle).manifest["files"]
    assert "Android Studio" in result.stderr
    refused = run_cli("package", tiny_bundle, tmp_path)
    assert refused.exit_code == 2 and "not the EdgeFusion Android app" in refused.stderr
