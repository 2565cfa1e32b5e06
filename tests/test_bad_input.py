"""Each user mistake gives one line naming the problem and the fix, exit code 2, and no partial output."""

import json
import shutil
import subprocess

import pytest

from .conftest import compile_args, run_cli


def assert_clean_error(result, *fragments: str, after_progress: bool = False) -> None:
    """Exit code 2 and one `error:` line naming the problem; nothing else unless the build had started."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and sum(line.startswith("error: ") for line in lines) == 1, result.stderr
    assert after_progress or len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[-1]


def compile_fails(tmp_path, *args, fragment: str) -> None:
    output = tmp_path / "out"
    assert_clean_error(run_cli(*compile_args(output, tmp_path / "cache", *args)), fragment)
    assert not output.exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_missing_model_folder(tmp_path):
    compile_fails(tmp_path, "--model", tmp_path / "nowhere", fragment="does not exist")


def test_empty_model_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    compile_fails(tmp_path, "--model", tmp_path / "empty", fragment="is empty")


def test_folder_that_is_not_a_diffusers_model(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    compile_fails(tmp_path, "--model", tmp_path / "photos", fragment="not a diffusers Stable Diffusion folder")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_safetensors(tmp_path, tiny_folder, damage):
    folder = shutil.copytree(tiny_folder, tmp_path / "model")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a tensor file" * 20)
    compile_fails(tmp_path, "--model", folder, fragment="not a valid safetensors file")


def test_single_file_that_is_corrupt(tmp_path):
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    compile_fails(tmp_path, "--model", checkpoint, fragment="not a valid safetensors file")


def test_pickle_checkpoint_needs_allow_pickle(tmp_path):
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"\x80\x04K\x01.")
    compile_fails(tmp_path, "--model", checkpoint, fragment="--allow-pickle")


def test_pickle_weights_in_a_folder_need_allow_pickle(tmp_path, tiny_folder):
    folder = shutil.copytree(tiny_folder, tmp_path / "model")
    (folder / "vae" / "diffusion_pytorch_model.safetensors").rename(folder / "vae" / "diffusion_pytorch_model.bin")
    compile_fails(tmp_path, "--model", folder, fragment="--allow-pickle")


def test_height_not_divisible_by_64(tmp_path):
    result = run_cli("compile", "--preset", "tiny", "--height", 100, "-o", tmp_path / "out")
    assert_clean_error(result, "height 100", "multiple of 64")


def test_unknown_preset(tmp_path):
    assert_clean_error(run_cli("compile", "--preset", "sdxl", "-o", tmp_path / "out"), "unknown preset", "bk-sdm-tiny")


def test_output_path_that_is_a_file(tmp_path):
    (tmp_path / "taken").write_text("mine")
    assert_clean_error(run_cli("compile", "--preset", "tiny", "-o", tmp_path / "taken"), "is a file")
    assert (tmp_path / "taken").read_text() == "mine"


def test_failed_build_keeps_the_previous_bundle(tmp_path, tiny_bundle, tiny_folder):
    output = shutil.copytree(tiny_bundle, tmp_path / "bundle")
    before = (output / "manifest.json").read_bytes()
    folder = shutil.copytree(tiny_folder, tmp_path / "model")
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"broken")
    assert_clean_error(run_cli(*compile_args(output, tmp_path / "cache", "--model", folder)), "safetensors")
    assert (output / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "model"]


def test_altered_bundle_file_is_refused(tmp_path, tiny_bundle):
    bundle = shutil.copytree(tiny_bundle, tmp_path / "bundle")
    weights = bundle / "unet.onnx.data"
    data = bytearray(weights.read_bytes())
    data[100] ^= 0xFF
    weights.write_bytes(bytes(data))
    result = run_cli("generate", bundle, "a cat", "-o", tmp_path / "x.png")
    assert_clean_error(result, "unet.onnx.data", "checksum")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("field, value", [("components", "../../etc/passwd"), ("files", "/etc/passwd"),
                                          ("tokenizer", "tokenizer/../../secret.json")])
def test_manifest_naming_a_file_outside_the_bundle_is_refused(tmp_path, tiny_bundle, field, value):
    bundle = shutil.copytree(tiny_bundle, tmp_path / "bundle")
    manifest = json.loads((bundle / "manifest.json").read_text())
    if field == "components":
        manifest["components"]["unet"]["file"] = value
    elif field == "files":
        manifest["files"][value] = {"sha256": "0" * 64, "size": 1}
    else:
        manifest["tokenizer"]["vocab_file"] = value
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert_clean_error(run_cli("generate", bundle, "a cat", "-o", tmp_path / "x.png"), "bundle")
    assert_clean_error(run_cli("inspect", bundle), "bundle")


def test_not_a_bundle(tmp_path):
    assert_clean_error(run_cli("inspect", tmp_path), "not a bundle")


def test_noise_file_of_the_wrong_shape(tmp_path, tiny_bundle):
    import numpy as np

    np.savez(tmp_path / "noise.npz", latent=np.zeros([1, 4, 4, 4], np.float32), step_noise=np.zeros([1, 1, 4, 4, 4], np.float32))
    result = run_cli("generate", tiny_bundle, "a cat", "--noise", tmp_path / "noise.npz", "-o", tmp_path / "x.png")
    assert_clean_error(result, "this bundle needs")


@pytest.mark.parametrize("change, location", [
    (lambda m: m["components"]["unet"].update(precision="int4"), "components/unet/precision"),
    (lambda m: m["sampling"].pop("steps"), "sampling"),
    (lambda m: m["sizes"]["64x64"].update(height=100), "sizes/64x64/height"),
])
def test_manifest_breaking_the_schema_is_refused(tmp_path, tiny_bundle, change, location):
    bundle = shutil.copytree(tiny_bundle, tmp_path / "bundle")
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert_clean_error(run_cli("inspect", bundle), "not a valid bundle manifest", location, "rebuild the bundle")


def test_noise_file_with_nan_is_refused(tmp_path, tiny_bundle):
    import numpy as np

    latent = np.zeros([1, 4, 8, 8], np.float32)
    latent[0, 0, 0, 0] = np.nan
    np.savez(tmp_path / "noise.npz", latent=latent, step_noise=np.zeros([1, 1, 4, 8, 8], np.float32))
    assert_clean_error(run_cli("generate", tiny_bundle, "a cat", "--noise", tmp_path / "noise.npz", "-o", tmp_path / "x.png"),
                       "NaN or infinite")
    assert not (tmp_path / "x.png").exists()


def test_seed_the_kotlin_core_cannot_take_is_refused(tmp_path, tiny_bundle):
    assert_clean_error(run_cli("generate", tiny_bundle, "a cat", "--seed", 2**63, "-o", tmp_path / "x.png"),
                       "seed 9223372036854775808 is outside", "64-bit signed")
    assert run_cli("generate", tiny_bundle, "a cat", "--seed", -(2**63), "-o", tmp_path / "y.png").exit_code == 0


def test_guidance_scale_below_one_is_refused(tmp_path):
    assert_clean_error(run_cli("compile", "--preset", "tiny", "--guidance-scale", "0.5", "-o", tmp_path / "o"),
                       "--guidance-scale 0.5 is below 1")


def test_corrupt_aihub_job_ledger_is_one_line(tmp_path, tiny_bundle):
    for content in ("{not json", "[1, 2]"):
        (tmp_path / "aihub-jobs.json").write_text(content)
        assert_clean_error(run_cli("profile", tiny_bundle, "--backend", "aihub", "-o", tmp_path / "p", "--cache-dir", tmp_path),
                           "aihub-jobs.json is", "delete it to submit the AI Hub jobs again")


def test_missing_chipset_schema_is_one_line(monkeypatch, tmp_path):
    from edgefusion_export.targets import chipsets

    monkeypatch.setattr(chipsets, "SCHEMA", tmp_path / "missing.schema.json")
    chipsets.load_chipsets.cache_clear()
    try:
        assert_clean_error(run_cli("targets"), "chipset profile schema", "is missing", "reinstall")
    finally:
        chipsets.load_chipsets.cache_clear()


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(tmp_path):
    disk = tmp_path / "small-disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"a small disk cannot be mounted here: {mounted.stderr.strip()}")
    try:
        result = run_cli(*compile_args(disk / "out", disk / "cache", "--preset", "tiny"))
        assert_clean_error(result, "the disk is full", "--cache-dir", after_progress=True)
        assert [path.name for path in disk.iterdir()] == ["cache"]
        assert not [path for path in (disk / "cache").rglob("*") if path.is_file()]
    finally:
        subprocess.run(["umount", str(disk)], check=True)
