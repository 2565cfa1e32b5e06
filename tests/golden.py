"""Emit the golden vectors the Kotlin core's JVM tests read (nothing golden is hand-copied).

    python -m tests.golden build/golden [CACHE]   (the stage cache: build/golden/cache by default)

Writes `tiny` bundles (fp32, Snapdragon, fp32 with the TAESD decoder, and fp32 at two image sizes), tokenizer cases (the built-in vocabulary
as written to files, which is all a fresh clone has, and the real CLIP vocabulary from ../shared/data when present),
seeded noise, the Python sampling plan, and the host runner's image. Paths in golden.json are absolute: the Kotlin
tests read them from another working directory.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from edgefusion_export.bundle.selection import write_selection
from edgefusion_export.bundle.manifest import load_bundle
from edgefusion_export.compiler import compile_bundle
from edgefusion_export.options import BuildOptions
from edgefusion_export.runtime.noise import gaussian_noise
from edgefusion_export.runtime.pipeline import Noise, Text2ImagePipeline
from edgefusion_export.sources.sampling import lcm_sampling_plan
from edgefusion_export.runtime.tokenizer import ClipTokenizer
from edgefusion_export.sources.resolve import resolve_source

from .conftest import SHARED_DATA
from .test_tokenizer import HARD_CASES

PROMPT = "a watercolor painting of a lighthouse at dawn"
SEED = 1234
SIZE = 64
SIZES = ((SIZE, SIZE), (SIZE, 2 * SIZE))  # (height, width): square and landscape


def tokenizer_cases(out: Path) -> list[dict]:
    """Each vocabulary's files and the ids Python gives every case prompt: the built-in one always, CLIP's when
    ../shared/data has it."""
    builtin = out.resolve() / "builtin-tokenizer"
    resolve_source(None, "tiny").tokenizer.save(builtin)
    vocabularies, prompts = {"built-in vocabulary": builtin}, list(HARD_CASES)
    prompts_file = SHARED_DATA / "prompts" / "parti-prompts-subset.tsv"
    if (SHARED_DATA / "clip-tokenizer").is_dir() and prompts_file.is_file():
        vocabularies["shared CLIP vocabulary"] = SHARED_DATA / "clip-tokenizer"
        prompts += [line.split("\t")[0] for line in prompts_file.read_text(encoding="utf-8").splitlines()[1:]]
    cases = []
    for name, folder in vocabularies.items():
        tokenizer = ClipTokenizer.from_files(folder / "vocab.json", folder / "merges.txt")
        cases.append({"vocabulary": name, "vocab_file": str(folder / "vocab.json"), "merges_file": str(folder / "merges.txt"),
                      "cases": [{"prompt": prompt, "ids": tokenizer(prompt)} for prompt in prompts]})
    return cases


def main(out: Path, cache: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    source = resolve_source(None, "tiny")
    options = BuildOptions(target="cpu", precision="fp32", sizes=((SIZE, SIZE),))
    compile_bundle(source, options, out / "bundle", cache, sys.argv, console)
    snapdragon = BuildOptions(target="snapdragon", sizes=((SIZE, SIZE),), chipsets=("snapdragon-8-gen-3",))
    compile_bundle(source, snapdragon, out / "snapdragon-bundle", cache, sys.argv, console)
    compile_bundle(resolve_source(None, "tiny", vae_decoder="taesd"), options, out / "tiny-decoder-bundle", cache,
                   sys.argv, console)
    compile_bundle(source, BuildOptions(target="cpu", precision="fp32", sizes=SIZES), out / "sizes-bundle", cache, sys.argv, console)
    write_selection(load_bundle(out / "snapdragon-bundle"), out / "snapdragon-compiled-only", "compiled")  # what an app ships
    for name, image in (("bundle", "host_image.f32"), ("snapdragon-bundle", "host_image_snapdragon.f32"),
                        ("tiny-decoder-bundle", "host_image_tiny_decoder.f32")):
        pipeline = Text2ImagePipeline.from_bundle(load_bundle(out / name))
        generation = pipeline(PROMPT, Noise.seeded(SEED, pipeline.plan))
        generation.image.transpose(2, 0, 1).astype("<f4").tofile(out / image)
    sizes = []
    for height, width in SIZES:
        label = f"{width}x{height}"
        sized = Text2ImagePipeline.from_bundle(load_bundle(out / "sizes-bundle"), size=label)
        sized(PROMPT, Noise.seeded(SEED, sized.plan)).image.transpose(2, 0, 1).astype("<f4").tofile(out / f"host_image_{label}.f32")
        sizes.append({"size": label, "image": f"host_image_{label}.f32", "image_shape": [3, height, width]})
    plan = lcm_sampling_plan(source.scheduler_config, options.steps, options.guidance_scale,
                             source.guidance_embedding_dim, pipeline.plan.latent_shape, 0.18215)
    golden = {
        "prompt": PROMPT, "seed": SEED, "image_shape": [3, SIZE, SIZE],
        "noise": [{"seed": seed, "stream": stream, "values": gaussian_noise(seed, stream, [64]).tolist()}
                  for seed, stream in ((0, 0), (SEED, 1), (2**63 - 1, 3))],
        "plan": plan.to_json(),
        "sizes": sizes,
        "tokenizers": tokenizer_cases(out),
    }
    (out / "golden.json").write_text(json.dumps(golden, ensure_ascii=False))
    counts = ", ".join(f"{len(spec['cases'])} for the {spec['vocabulary']}" for spec in golden["tokenizers"])
    console.print(f"golden vectors written to {out} (tokenizer cases: {counts})")


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "build/golden")
    main(folder, Path(sys.argv[2]) if len(sys.argv) > 2 else folder / "cache")
