"""Cache keys are derived from what each pass reads: changing one build option re-runs exactly the passes that read
it (directly or through an artifact they read), nothing changed re-runs nothing, and a moved cache still serves."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from edgefusion_export.bundle.manifest import load_bundle
from edgefusion_export.compiler import compile_bundle
from edgefusion_export.options import BuildOptions
from edgefusion_export.quantize.calibration import read_prompts
from edgefusion_export.quantize.fidelity import FidelityGates
from edgefusion_export.errors import UserError
from edgefusion_export.quantize.recipes import QuantizeSettings
from edgefusion_export.runtime.pipeline import Text2ImagePipeline
from edgefusion_export.sources.resolve import resolve_source
from edgefusion_export.stages import Pass, StageCache, StageResult
from edgefusion_export.targets import aihub
from edgefusion_export.targets.chipsets import chipset

from .conftest import TINY_SIZE
from .fake_qai_hub import FakeHub

CHIP, OTHER_CHIP = "snapdragon-8-gen-3", "snapdragon-8-gen-2"
BASE = BuildOptions(target="snapdragon", precision="edgefusion", sizes=((TINY_SIZE, TINY_SIZE),), evaluation_size=1,
                    fidelity_images=1)
COMPONENTS = ("text_encoder", "unet", "vae_decoder")


def on_npu(*components: str, chip: str = CHIP, passes: tuple[str, ...] = ("qnn", "verify-npu")) -> set[str]:
    return {f"{step} {component} {chip}" for step in passes for component in components}


EVERY_PASS = ({f"export {c}" for c in COMPONENTS} | {f"simplify {c}" for c in COMPONENTS}
              | {"fp16 text_encoder", "fp16 vae_decoder", "calibrate", "w8a16 unet", "fidelity end-to-end"}
              | on_npu(*COMPONENTS))
# A new UNet (calibration changed): its quantization, compile and check, and the end-to-end comparison.
NEW_UNET = {"w8a16 unet", "fidelity end-to-end"} | on_npu("unet")
SIZE_CHANGED = ({"export unet", "export vae_decoder", "simplify unet", "simplify vae_decoder", "fp16 vae_decoder",
                 "calibrate"} | NEW_UNET | on_npu("vae_decoder"))
PLAN_CHANGED = {"calibrate", "verify-npu vae_decoder " + CHIP} | NEW_UNET  # other denoised latents for the decoder

# For each option field: a changed value, and the passes that read it (the others must come from the cache).
CHANGES: dict[str, tuple[Any, set[str]]] = {
    "target": ("cpu", set()),
    # the text encoder's and decoder's FP16 models are the same: new held-out inputs (the export's examples) only
    "precision": ("fp16", {"export unet", "simplify unet", "fp16 unet", "fidelity end-to-end", "qnn unet " + CHIP}
                  | on_npu(*COMPONENTS, passes=("verify-npu",))),
    "steps": (4, PLAN_CHANGED),
    "guidance_scale": (4.0, PLAN_CHANGED),
    "sizes": (((TINY_SIZE, 2 * TINY_SIZE),), SIZE_CHANGED),
    "force": (True, EVERY_PASS),
    "calibration_prompts": (reversed, {"calibrate"} | NEW_UNET | on_npu("text_encoder", "vae_decoder", passes=("verify-npu",))),
    "calibration_size": (12, {"calibrate"} | NEW_UNET),
    "evaluation_size": (2, {"calibrate"} | NEW_UNET),
    "quantize.min_sqnr_db": (25.0, set()),
    "quantize.max_float_fraction": (0.5, set()),
    "quantize.activation_ranges": ("percentile", NEW_UNET),
    "fidelity.min_psnr_db": (10.0, set()),
    "fidelity.min_prompt_sensitivity": (0.5, set()),
    "fidelity_images": (2, {"fidelity end-to-end"}),
    "chipsets": ((OTHER_CHIP,), on_npu(*COMPONENTS, chip=OTHER_CHIP)),
    "allow_cpu_fallback": (True, on_npu(*COMPONENTS)),
    "aihub": (True, on_npu(*COMPONENTS, passes=("aihub",))),
    "verify_npu": ("off", set()),
    "min_npu_sqnr": (30.0, set()),
    "ship": ("compiled", set()),
    "qnn_optimization": ("1", on_npu(*COMPONENTS)),
    "lookup_tables": ("fp16", {"fp16 text_encoder", "fidelity end-to-end"} | on_npu("text_encoder")),  # the decoder has none
}


def option_fields(options_type: type = BuildOptions, prefix: str = "") -> list[str]:
    """Every field of the build options, nested settings included ("quantize.min_sqnr_db")."""
    names = []
    for item in dataclasses.fields(options_type):
        default = getattr(options_type(), item.name)
        if dataclasses.is_dataclass(default):
            names += option_fields(type(default), f"{prefix}{item.name}.")
        else:
            names.append(prefix + item.name)
    return names


def changed(options: BuildOptions, name: str, value: Any) -> BuildOptions:
    group, _, leaf = name.rpartition(".")
    if group:
        return dataclasses.replace(options, **{group: dataclasses.replace(getattr(options, group), **{leaf: value})})
    return dataclasses.replace(options, **{name: value})


def build(options: BuildOptions, cache: Path, output: Path, vae_decoder: str | None = None) -> set[str]:
    """The passes this build produced (the others came from the cache); a component's checks of its held-out calls
    ("verify-npu unet <chip> t=999") count as its one check."""
    source = resolve_source(None, "tiny", vae_decoder=vae_decoder)
    report = compile_bundle(source, options, output, cache, ["test"], Console(quiet=True))
    return {" ".join(stage["name"].split()[:3]) if stage["name"].startswith("verify-npu") else stage["name"]
            for stage in report["stages"] if not stage["cached"]}


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("keys") / "cache"
    assert build(BASE, cache, cache.parent / "base") == EVERY_PASS
    return cache


def test_refitting_a_chipset_profile_keeps_its_compiles(tmp_path):
    """A compile's key holds what it reads of the chipset (name, SoC, HTP architecture, soc_model, AI Hub device):
    new estimate constants or throughput figures in the profile serve the compiled binaries from the cache."""
    chip = chipset(CHIP)
    refitted = dataclasses.replace(chip, estimate={}, npu_int8_tops=2 * chip.npu_int8_tops)
    cache = StageCache(tmp_path, Console(quiet=True))
    step = lambda profile: Pass("qnn unet", {"chip": profile}, lambda folder, chip: None, StageResult)  # noqa: E731
    assert cache.key(step(chip)) == cache.key(step(refitted))
    assert cache.key(step(chip)) != cache.key(step(dataclasses.replace(chip, qnn_soc_model=69)))


def test_the_table_covers_every_option_field():
    assert sorted(CHANGES) == sorted(option_fields())
    assert BuildOptions().quantize == QuantizeSettings() and BuildOptions().fidelity == FidelityGates()


def test_nothing_changed_reruns_nothing(warm_cache, tmp_path):
    assert build(BASE, warm_cache, tmp_path / "again") == set()


@pytest.mark.parametrize("name", list(CHANGES))
def test_one_changed_option_reruns_exactly_the_passes_that_read_it(name, warm_cache, tmp_path, monkeypatch):
    value, expected = CHANGES[name]
    if name == "calibration_prompts":  # the built-in prompts in reverse order: others calibrate and are held out
        value = tmp_path / "prompts.txt"
        value.write_text("\n".join(reversed(read_prompts(None))) + "\n")
    if name == "aihub":
        FakeHub().install(monkeypatch)
        monkeypatch.setenv(aihub.TOKEN_ENV, "test-token")
    assert build(changed(BASE, name, value), warm_cache, tmp_path / "bundle") == expected


def test_quantizing_the_decoder_reruns_only_the_decoder(warm_cache, tmp_path):
    """The recipe variant with a W8A16 decoder: the calibration (which does not run the decoder), the UNet and the
    text encoder come from the cache."""
    expected = {"export vae_decoder", "simplify vae_decoder", "w8a16 vae_decoder", "fidelity end-to-end"} | on_npu("vae_decoder")
    assert build(changed(BASE, "precision", "edgefusion-w8a16-decoder"), warm_cache, tmp_path / "bundle") == expected


def test_another_decoder_reruns_only_the_decoder(warm_cache, tmp_path):
    """`--vae-decoder taesd` (another latent scaling factor): the calibration, which does not run the decoder, the
    UNet and the text encoder come from the cache."""
    expected = {"export vae_decoder", "simplify vae_decoder", "fp16 vae_decoder", "fidelity end-to-end",
                "compare decoders"} | on_npu("vae_decoder")
    assert build(BASE, warm_cache, tmp_path / "bundle", vae_decoder="taesd") == expected


def test_a_moved_cache_serves_every_pass(warm_cache, tmp_path):
    moved = tmp_path / "elsewhere" / "cache"
    shutil.copytree(warm_cache, moved)
    assert build(BASE, moved, tmp_path / "bundle") == set()
    assert load_bundle(tmp_path / "bundle").manifest["sizes"] == load_bundle(warm_cache.parent / "base").manifest["sizes"]


def fidelity(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["sizes"][f"{TINY_SIZE}x{TINY_SIZE}"]["fidelity"]


def test_a_second_size_runs_only_its_own_passes(warm_cache, tmp_path):
    """A size added over a warm cache: the first size's passes and the text encoder's all come from the cache; the
    size-dependent components run for the new size (each checked in HTP emulation), then each one's sizes are
    written over one weights file and compiled into one context binary per chipset."""
    tall = (2 * TINY_SIZE, TINY_SIZE)  # (height, width): a size no other test here builds
    two_sizes = dataclasses.replace(BASE, sizes=(*BASE.sizes, tall))
    shared = {"share weights unet", "share weights vae_decoder"} | on_npu("unet", "vae_decoder", passes=("qnn-shared",))
    assert build(two_sizes, warm_cache, tmp_path / "bundle") == SIZE_CHANGED | shared
    manifest = load_bundle(tmp_path / "bundle").manifest
    label = f"{TINY_SIZE}x{2 * TINY_SIZE}"
    assert list(manifest["sizes"]) == [f"{TINY_SIZE}x{TINY_SIZE}", label]
    assert manifest["sizes"][label]["graphs"] == {"text_encoder": "text_encoder", "unet": f"unet@{label}",
                                                  "vae_decoder": f"vae_decoder@{label}"}
    one_size = load_bundle(warm_cache.parent / "base").manifest
    for component in ("unet", "vae_decoder"):
        square, wide_graph = manifest["components"][component], manifest["components"][f"{component}@{label}"]
        assert wide_graph["compiled"][CHIP]["offline"]["file"] == f"qnn/{CHIP}/{component}-{label}.{CHIP}.onnx"
        binaries = square["compiled"][CHIP]["offline"]["context_binaries"]
        assert len(binaries) == 1 and wide_graph["compiled"][CHIP]["offline"]["context_binaries"] == binaries
        # the new size's graph in HTP emulation against the CPU, every call: measured 51.4 dB (UNet, t=999; 62.9 at
        # t=499) and 66.0 dB (decoder); a wrong binary measures about 0 dB
        emulated = wide_graph["compiled"][CHIP]["emulated"]
        assert emulated["size"] == label and "single-graph" in emulated["binary"]
        assert emulated["sqnr_vs_cpu_db"] >= {"unet": 50, "vae_decoder": 64}[component]
        assert wide_graph["shared_weights"] == square["shared_weights"] == f"{component}.weights"
        # the weights stored once: one binary for both sizes against two of the one-size build's; measured 0.67
        # (UNet) and 0.75 (decoder) on `tiny`, whose graphs' own structure and 64 KiB padding weigh as much as its
        # weights (bk-sdm-tiny's UNet at three sizes: 1.004x one size, benchmarks/qnn_weight_sharing.py)
        shared_bytes = manifest["files"][binaries[0]]["size"]
        one_size_bytes = one_size["files"][one_size["components"][component]["compiled"][CHIP]["offline"]["context_binaries"][0]]["size"]
        assert shared_bytes <= 0.8 * 2 * one_size_bytes, (component, shared_bytes / one_size_bytes)
    assert not [name for name in manifest["files"] if name.startswith(f"qnn/{CHIP}/{label}/")]  # the single-graph twins stay in the cache
    with pytest.raises(UserError, match="shares its context binary with unet@"):  # rather than the emulator's crash
        Text2ImagePipeline.from_bundle(load_bundle(tmp_path / "bundle"), backend="npu-emulator")


def test_a_new_sampling_plan_is_judged_on_its_own_images(warm_cache, tmp_path):
    """An FP16 build has no calibration: only the end-to-end comparison reads the sampling plan, and reruns."""
    two_steps = dataclasses.replace(BASE, target="cpu", precision="fp16", steps=2)
    build(two_steps, warm_cache, tmp_path / "two")
    assert "fidelity end-to-end" in build(dataclasses.replace(two_steps, steps=4), warm_cache, tmp_path / "four")
    two, four = (load_bundle(tmp_path / name).manifest for name in ("two", "four"))
    assert four["sampling"]["num_steps"] == 4 and fidelity(four)["psnr_db"] != fidelity(two)["psnr_db"]
    assert (tmp_path / "four" / "fidelity.png").read_bytes() != (tmp_path / "two" / "fidelity.png").read_bytes()
