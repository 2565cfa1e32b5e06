"""Can one QNN context binary hold a component at several image sizes with its weights stored once, and can such a
binary run here? Export a preset's UNet at each size, compile every size alone and all sizes into one shared context
(onnxruntime's `ep.share_ep_contexts` / `ep.stop_share_ep_contexts`), print JSON: the binaries' sizes (shared against
one size and against all single-size binaries together), the compile times, and whether each shared graph loads and
runs in HTP emulation (in a child process: a crash there is a result, not the end of the benchmark).

    .venv/bin/python benchmarks/qnn_weight_sharing.py [--preset bk-sdm-tiny] [--size 64x64 --size 96x64 ...]
                                                     [--chipset NAME] [--work DIR]

FP16 graphs (the float UNet compiled with QNN's FP16 precision): what QNN deduplicates is the weight tensors, which a
W8A16 build also keeps identical across sizes (per-channel weight scales come from the weights alone).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from edgefusion_export.export import onnx_export
from edgefusion_export.export.shared_weights import share_weights
from edgefusion_export.metrics import sqnr_db
from edgefusion_export.runtime.sessions import cpu_session, htp_session
from edgefusion_export.sources.resolve import resolve_source
from edgefusion_export.targets import snapdragon
from edgefusion_export.targets.chipsets import Chipset, chipset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="bk-sdm-tiny")
    parser.add_argument("--size", action="append", dest="sizes", help="WIDTHxHEIGHT, repeatable (default 64x64, 96x64, 64x96)")
    parser.add_argument("--chipset", default="snapdragon-8-gen-3")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgefusion-weight-sharing")
    args = parser.parse_args()
    sizes = args.sizes or ["64x64", "96x64", "64x96"]
    chip = chipset(args.chipset)
    source = resolve_source(None, args.preset)
    models = []
    for size in sizes:
        width, height = map(int, size.split("x"))
        folder = args.work / "portable" / size
        if not (folder / "unet.onnx").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            onnx_export.export_component(source, "unet", (height, width), folder)
        models.append(folder / "unet.onnx")
    source.release()
    together = args.work / "together"
    together.mkdir(parents=True, exist_ok=True)
    files = {size: f"unet-{size}.onnx" for size in sizes}  # one folder, distinct names: what compile_context takes
    share_weights(together, dict(zip(sizes, models)), files, "unet.weights")
    single = {size: compile_fp16(args.work / "single" / size, [model], chip)[0] for size, model in zip(sizes, models)}
    shared = compile_fp16(args.work / "shared", [together / files[size] for size in sizes], chip)
    binaries = lambda folder, compilations: {folder / name for c in compilations for name in c.context_binaries}  # noqa: E731
    shared_bytes = sum(path.stat().st_size for path in binaries(args.work / "shared", shared))
    single_bytes = {size: sum(path.stat().st_size for path in binaries(args.work / "single" / size, [compilation]))
                    for size, compilation in single.items()}
    print(json.dumps({
        "preset": args.preset, "chipset": chip.name, "sizes": sizes, "precision": "fp16",
        "shared": {"binaries": sorted(path.name for path in binaries(args.work / "shared", shared)),
                   "mb": round(shared_bytes / 1e6, 1), "compile_s": shared[0].seconds},
        "single_mb": {size: round(value / 1e6, 1) for size, value in single_bytes.items()},
        "single_compile_s": {size: compilation.seconds for size, compilation in single.items()},
        "shared_vs_one_size": round(shared_bytes / single_bytes[sizes[0]], 3),
        "shared_vs_all_single": round(shared_bytes / sum(single_bytes.values()), 3),
        "emulation": {size: run_in_child(args.work / "shared" / compilation.file, model, chip)
                      for size, compilation, model in zip(sizes, shared, models)},
        "emulation_single": {sizes[0]: run_in_child(args.work / "single" / sizes[0] / single[sizes[0]].file, models[0], chip)},
    }, indent=2))


def compile_fp16(folder: Path, models: list[Path], chip: Chipset) -> list[snapdragon.NpuCompilation]:
    """`models` compiled with FP16 precision and finalization mode 3 into one context binary in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    return snapdragon.compile_context(models, chip, folder, allow_cpu_fallback=False, mode="3")


def run_in_child(compiled: Path, portable: Path, chip) -> dict:
    """Load and run one compiled graph in HTP emulation in a child process, against the CPU on seeded inputs."""
    with in_child() as child:
        try:
            return child.submit(emulate, str(compiled), str(portable), chip).result()
        except BrokenProcessPool:
            return {"ran": False, "error": "the process loading it died (segmentation fault in libQnnHtp.so's "
                                           "contextCreateFromBinary when the binary holds several graphs)"}
        except Exception as error:  # QNN's own error
            return {"ran": False, "error": f"{type(error).__name__}: {error}"}


def in_child() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))


def emulate(compiled: str, portable: str, chip) -> dict:
    cpu = cpu_session(Path(portable))
    rng = np.random.default_rng(0)
    feeds = {spec.name: (np.array([499.0], np.float32) if spec.name == "timestep" else
                         rng.standard_normal(spec.shape).astype(np.float32)) for spec in cpu.get_inputs()}
    start = time.perf_counter()
    output = htp_session(Path(compiled), chip.htp_target).run(None, feeds)[0]
    return {"ran": True, "sqnr_vs_cpu_db": round(sqnr_db(cpu.run(None, feeds)[0], output), 1),
            "seconds": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    main()
