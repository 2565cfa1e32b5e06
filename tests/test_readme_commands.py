"""The README's commands as a person types them: from a working directory, with relative paths (and the tiny
preset at 64x64 instead of the full-size default)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from edgefusion_export.bundle.manifest import load_bundle
from edgefusion_export.targets.chipsets import load_chipsets

from .conftest import TINY_SIZE, run_cli

SIZE = ("--height", str(TINY_SIZE), "--width", str(TINY_SIZE))


def run(command: str, *args: str):
    result = run_cli(*command.split(), *args)
    assert result.exit_code == 0, f"edgefusion-export {command} {' '.join(args)}\n{result.output}"
    return result


def test_every_command_with_relative_paths(snapdragon_bundle, tiny_folder, cache_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EDGEFUSION_CACHE", str(cache_dir))  # the default cache, warm from the session's builds
    shutil.copytree(tiny_folder, "models/tiny-diffusers")
    (tmp_path / "android_app" / "app").mkdir(parents=True)
    (tmp_path / "android_app" / "settings.gradle.kts").write_text("")

    run("compile --preset tiny --target snapdragon -o out/bundle", *SIZE)
    run("compile --model models/tiny-diffusers -o out/from-folder", *SIZE)
    run("inspect out/bundle")
    generated = run("generate out/bundle", "a photo of a red fox in the snow", "--seed", "42", "-o", "fox.png")
    assert "(unet.onnx)" in generated.stderr and (tmp_path / "fox.png").is_file()
    emulated = run("generate out/bundle", "a red fox", "--backend", "npu-emulator", "--chipset", "snapdragon-8-gen-3",
                   "-o", "npu.png")
    assert "(qnn/snapdragon-8-gen-3/unet.snapdragon-8-gen-3.onnx)" in emulated.stderr
    run("profile out/bundle -o profile")
    assert json.loads((tmp_path / "profile" / "profile.json").read_text())["backend"] == "estimate"
    run("profile out/bundle --backend estimate -o profile-again --baseline profile/profile.json")
    estimated = json.loads(run("estimate out/bundle/unet.onnx --chipset snapdragon-8-gen-3 --json").stdout)
    assert estimated["model"] == "out/bundle/unet.onnx" and estimated["precision"] == "w8a16"  # read from the QDQ graph
    # the profile's estimate of the same graph on the same chipset, by the same code: its total and slowest layers
    run("profile out/bundle --chipset snapdragon-8-gen-3 -o profile-8-gen-3")
    profiled = json.loads((tmp_path / "profile-8-gen-3" / "profile.json").read_text())
    assert estimated["total_ms"] == pytest.approx(profiled["components"]["unet"]["total_ms"], abs=1e-4)
    slowest = sorted((row for row in profiled["rows"] if row["component"] == "unet"), key=lambda row: -row["time_ms"])[:5]
    listed = run("estimate out/bundle/unet.onnx --chipset snapdragon-8-gen-3 --top 5").stdout
    assert all(f" {row['name']} " in listed for row in slowest), listed
    run("package out/bundle android_app")
    assert load_bundle(tmp_path / "android_app" / "app" / "src" / "main" / "assets" / "bundle").manifest
    assert "stages" in run("cache --cache-dir", os.path.relpath(cache_dir)).stdout


def test_tables_never_cut_what_a_person_types_or_copies(snapdragon_bundle, monkeypatch):
    """In an 80-column terminal, or piped: the names `--chipset`, `--device` and the bundle's files need."""
    monkeypatch.setenv("COLUMNS", "80")
    listing = run("targets").stdout
    for chip in load_chipsets().values():
        assert chip.name in listing and chip.aihub_device in listing and chip.soc in listing
    inspected = run("inspect", str(snapdragon_bundle)).stdout
    manifest = load_bundle(snapdragon_bundle).manifest
    for name, component in manifest["components"].items():
        assert f" {component['file']} " in inspected
        for spec in component["inputs"] + component["outputs"]:
            assert f" {spec['name']} " in inspected and f" {spec['shape']} ".replace("'", "") in inspected
    for chip in manifest["target"]["chipsets"]:  # the NPU models table: each chipset, each UNet step's check
        assert f" {chip['name']} " in inspected
    assert "t=999 " in inspected and "t=499 " in inspected
