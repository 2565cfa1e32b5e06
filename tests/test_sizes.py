"""Several image sizes in one bundle: per-size graphs of the UNet and the decoder over weights stored once, the text
encoder once, and every runner picking the graphs by size."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgefusion_export.bundle.manifest import load_bundle
from edgefusion_export.metrics import psnr_db
from edgefusion_export.runtime.pipeline import Noise, Text2ImagePipeline

from .conftest import TINY_SIZE, run_cli

SQUARE, WIDE = f"{TINY_SIZE}x{TINY_SIZE}", f"{2 * TINY_SIZE}x{TINY_SIZE}"
PROMPT = "a lighthouse on a cliff at dusk"


def compile_sizes(output: Path, cache: Path, *sizes: str) -> Path:
    args = [arg for size in sizes for arg in ("--size", size)]
    result = run_cli("compile", "--preset", "tiny", "--precision", "edgefusion", *args, "-o", output, "--cache-dir", cache)
    assert result.exit_code == 0, result.output
    return output


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, cache_dir) -> dict[str, Path]:
    """The two-size bundle and the one-size bundle of each size, over one cache (the W8A16 UNet is calibrated per size)."""
    folder = tmp_path_factory.mktemp("sizes")
    return {"both": compile_sizes(folder / "both", cache_dir, SQUARE, WIDE),
            SQUARE: compile_sizes(folder / "square", cache_dir, SQUARE), WIDE: compile_sizes(folder / "wide", cache_dir, WIDE)}


def component_bytes(bundle: Path, component: str) -> int:
    """The bytes of a component's portable graphs and their weights in a bundle."""
    manifest = load_bundle(bundle).manifest
    names = {name for entry in manifest["components"].values() if entry["component"] == component
             for name in (entry["file"], entry.get("shared_weights"), entry["file"] + ".data") if name}
    return sum((bundle / name).stat().st_size for name in names if (bundle / name).is_file())


@pytest.mark.parametrize("size", [SQUARE, WIDE])
def test_each_size_generates_what_its_one_size_build_does(bundles, size):
    both = Text2ImagePipeline.from_bundle(load_bundle(bundles["both"]), size=size)
    alone = Text2ImagePipeline.from_bundle(load_bundle(bundles[size]))
    noise = Noise.seeded(3, alone.plan)
    image = both(PROMPT, noise).image
    width, height = map(int, size.split("x"))
    assert image.shape == (height, width, 3)
    assert psnr_db(alone(PROMPT, noise).image, image) >= 120


# (weights file against one size's, both sizes against two one-size bundles): measured 1.07 and 0.70 for the W8A16
# UNet (its biases' int32 values follow the activation scales, so they differ per size; on `tiny` the graph
# structure is a third of the bytes), 1.007 and 0.56 for the fp32 decoder
SHARING = {"unet": (1.10, 0.72), "vae_decoder": (1.02, 0.58)}


def test_the_sizes_store_their_weights_once(bundles):
    manifest = load_bundle(bundles["both"]).manifest
    assert list(manifest["sizes"]) == [SQUARE, WIDE]
    assert manifest["sizes"][WIDE]["latent_shape"] == [1, 4, TINY_SIZE // 8, 2 * TINY_SIZE // 8]
    assert [name for name, entry in manifest["components"].items() if entry["component"] == "text_encoder"] == ["text_encoder"]
    for component, (weights_limit, total_limit) in SHARING.items():
        weights = (bundles["both"] / f"{component}.weights").stat().st_size
        assert weights <= weights_limit * (bundles[SQUARE] / f"{component}.onnx.data").stat().st_size, component
        separate = component_bytes(bundles[SQUARE], component) + component_bytes(bundles[WIDE], component)
        assert component_bytes(bundles["both"], component) <= total_limit * separate, component


def test_a_size_the_bundle_lacks_is_refused_naming_the_sizes_it_has(bundles, tmp_path):
    result = run_cli("generate", bundles["both"], PROMPT, "--size", "96x64", "-o", tmp_path / "x.png")
    assert result.exit_code == 2 and "has no 96x64 graphs; it generates 64x64, 128x64" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "x.png").exists()


def test_generate_and_profile_pick_the_size(bundles, tmp_path):
    result = run_cli("generate", bundles["both"], PROMPT, "--size", WIDE, "-o", tmp_path / "wide.png")
    assert result.exit_code == 0, result.output
    profiles = {}
    for size in (SQUARE, WIDE):
        assert run_cli("profile", bundles["both"], "--size", size, "-o", tmp_path / size).exit_code == 0
        profiles[size] = json.loads((tmp_path / size / "profile.json").read_text())
    assert profiles[WIDE]["size"] == WIDE
    assert profiles[WIDE]["components"]["text_encoder"] == profiles[SQUARE]["components"]["text_encoder"]
    assert profiles[WIDE]["components"]["unet"]["total_ms"] > profiles[SQUARE]["components"]["unet"]["total_ms"]
    result = run_cli("profile", bundles["both"], "--size", WIDE, "-o", tmp_path / "gate", "--baseline", tmp_path / SQUARE / "profile.json")
    assert result.exit_code == 2 and "compare profiles of one size" in result.output


@pytest.mark.parametrize("version, fix", [("1.0", "rebuild the bundle"), ("3.0", "upgrade edgefusion-export")])
def test_another_manifest_major_version_is_refused(bundles, tmp_path, version, fix):
    bundle = shutil.copytree(bundles[SQUARE], tmp_path / "bundle")
    manifest = json.loads((bundle / "manifest.json").read_text())
    (bundle / "manifest.json").write_text(json.dumps({**manifest, "schema_version": version}))
    result = run_cli("inspect", bundle)
    assert result.exit_code == 2 and f"schema version '{version}'" in result.output and fix in result.output


@pytest.mark.parametrize("args, message", [
    (("--size", "512"), "is not WIDTHxHEIGHT"),
    (("--size", "512x512", "--height", "256"), "--size and --height/--width"),
    (("--size", "64x64", "--size", "64x64"), "is given twice"),
    (("--size", "100x64"), "width 100 of size 100x64 is not a positive multiple of 64"),
])
def test_bad_sizes_are_refused_before_any_work(tmp_path, args, message):
    result = run_cli("compile", "--preset", "tiny", *args, "-o", tmp_path / "out", "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 2 and message in result.output and not (tmp_path / "cache").exists()
