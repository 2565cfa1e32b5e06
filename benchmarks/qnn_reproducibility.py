"""Does QNN write the same context binary twice? Compile one ONNX graph several times at each graph finalization
mode, each compile in a fresh process as `compile` runs it, one after another, and print JSON: per mode, each
compile's seconds and binary checksum, and the number of distinct binaries. With `--load`, a busy loop runs on
every core during each compile (as a build's other passes do), which changes how QNN's threads interleave.

    .venv/bin/python benchmarks/qnn_reproducibility.py MODEL.onnx [--mode 1 --mode 3 ...] [--repeats 3] [--load]
                                                       [--chipset NAME] [--work DIR]

`make demo`'s graphs are in its stage cache, e.g. the FP16 VAE decoder:
`~/.cache/edgefusion-export/fp16-vae_decoder/*/vae_decoder.onnx` (3-4 min per compile at mode 3 on 2 cores).
A quantized graph at mode 1 is compiled at mode 2, as `compile` does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from edgefusion_export.files import sha256_file
from edgefusion_export.targets import snapdragon
from edgefusion_export.targets.chipsets import chipset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--mode", action="append", dest="modes", choices=["1", "2", "3"], help="repeatable (default 1 and 3)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load", action="store_true", help="a busy loop on every core during each compile")
    parser.add_argument("--chipset", default="snapdragon-8-gen-3")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgefusion-qnn-reproducibility")
    args = parser.parse_args()
    chip = chipset(args.chipset)
    report = {"model": str(args.model), "chipset": chip.name, "load": args.load, "modes": {}}
    for requested in args.modes or ["1", "3"]:
        mode = snapdragon.finalization_mode(args.model, requested)
        compiles = []
        for repeat in range(args.repeats):
            folder = args.work / f"mode-{mode}" / str(repeat)
            folder.mkdir(parents=True, exist_ok=True)
            with busy_cores(os.cpu_count() if args.load else 0):
                compilation = snapdragon.compile_for_chipset(args.model, chip, folder, allow_cpu_fallback=True, mode=mode)
            binaries = [folder / name for name in compilation.context_binaries]
            compiles.append({"seconds": compilation.seconds, "sha256": [sha256_file(binary) for binary in binaries],
                             "bytes": sum(binary.stat().st_size for binary in binaries)})
        report["modes"][mode] = {"compiles": compiles,
                                 "distinct_binaries": len({tuple(c["sha256"]) for c in compiles})}
    print(json.dumps(report, indent=2))


@contextmanager
def busy_cores(count: int) -> Iterator[None]:
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


if __name__ == "__main__":
    main()
