"""Command line: thin wrappers over the compiler, the host runner and the bundle reader."""

from __future__ import annotations

import errno
import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click
from rich import box
from rich.console import Console
from rich.markup import escape

from .errors import UserError, first_line
from .bundle.selection import SHIP_CHOICES
from .components import DEFAULT_SIZE, ImageSize, parse_size
from .options import BuildOptions, FidelityGates, QuantizeSettings
from .tables import show, table
from .targets.aihub import DEFAULT_TIMEOUT_S
from .quantize.lookup_tables import LOOKUP_TABLE_CHOICES
from .targets.base import QNN_OPTIMIZATION_CHOICES, VERIFY_NPU_CHOICES

if TYPE_CHECKING:
    from .profile.gate import Regression

console = Console(stderr=True, highlight=False)


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Print a UserError, or a full disk, as one line and exit 2, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as error:
            click.echo(f"error: {error}", err=True)
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            where = f" (writing {error.filename})" if error.filename else ""
            click.echo(f"error: the disk is full{where}; free space, for instance with 'edgefusion-export cache --prune "
                       "DAYS', or pass --cache-dir and -o on a larger disk", err=True)
        sys.exit(2)

    return wrapper


@click.group()
@click.version_option(package_name="edgefusion-export")
def main() -> None:
    """Compile few-step text-to-image models (BK-SDM-Tiny LCM) for phone NPUs."""


@main.command("compile")
@click.option("--model", type=click.Path(path_type=Path), help="A diffusers folder or a single-file .safetensors checkpoint.")
@click.option("--preset", help="Built-in architecture (bk-sdm-tiny, bk-sdm-small, sd-v1.5, tiny); the architecture of a single-file --model.")
@click.option("--tokenizer", type=click.Path(path_type=Path), help="A CLIP tokenizer folder (vocab.json, merges.txt) instead of the built-in one.")
@click.option("--vae-decoder", help="Ship another VAE decoder: a diffusers AutoencoderTiny folder (TAESD's layout) or 'taesd' (its configuration with seeded random weights). Default: the model's own.")
@click.option("--allow-pickle", is_flag=True, help="Allow loading pickle (.ckpt/.bin) weights, which can run code. Only for files you trust.")
@click.option("--target", default=BuildOptions.target, show_default=True, help="cpu or snapdragon.")
@click.option("--precision", help="fp32, fp16, w8a16, edgefusion (UNet W8A16, rest FP16), edgefusion-w8a16-decoder (UNet and VAE decoder W8A16, text encoder FP16) or w8a16-mixed (default: the target's).")
@click.option("--steps", default=BuildOptions.steps, show_default=True, type=int, help="Number of LCM sampling steps.")
@click.option("--guidance-scale", default=BuildOptions.guidance_scale, show_default=True, type=float, help="LCM guidance scale, baked into the bundle.")
@click.option("--size", "sizes", multiple=True, help="Image size WIDTHxHEIGHT (repeatable: one bundle for several sizes, the first its default; multiples of 64). Default: 512x512.")
@click.option("--height", type=int, help="The one-size form: image height (default 512).")
@click.option("--width", type=int, help="The one-size form: image width (default 512).")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Bundle folder to write.")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Where finished stages are cached (default ~/.cache/edgefusion-export).")
@click.option("--force", is_flag=True, help="Redo every stage even when cached.")
@click.option("--calibration-prompts", type=click.Path(path_type=Path), help="Prompt file (one per line, or a .tsv); even lines calibrate, odd lines are held out.")
@click.option("--calibration-size", default=BuildOptions.calibration_size, show_default=True, type=int, help="Prompts used for calibration.")
@click.option("--min-sqnr", default=QuantizeSettings.min_sqnr_db, show_default=True, type=float, help="Gate: held-out SQNR (dB) of each quantized component.")
@click.option("--max-float-fraction", default=QuantizeSettings.max_float_fraction, show_default=True, type=float, help="w8a16-mixed: most weights kept in float.")
@click.option("--min-psnr", default=FidelityGates.min_psnr_db, show_default=True, type=float, help="Gate: image PSNR (dB) against the float build.")
@click.option("--min-prompt-sensitivity", default=FidelityGates.min_prompt_sensitivity, show_default=True, type=float, help="Gate: prompt conditioning kept, as a fraction of the float model's.")
@click.option("--fidelity-images", default=BuildOptions.fidelity_images, show_default=True, type=int, help="Held-out images compared end to end (0: conditioning check only).")
@click.option("--chipset", "chipsets", multiple=True, help="Snapdragon chipset profile (repeatable; default: snapdragon-8-gen-3). See 'targets'.")
@click.option("--allow-cpu-fallback", is_flag=True, help="Accept components that do not compile to one NPU partition (listed in the report).")
@click.option("--aihub", is_flag=True, help="Also compile each component in Qualcomm AI Hub (token: QAI_HUB_API_TOKEN or qai-hub configure).")
@click.option("--verify-npu", type=click.Choice(VERIFY_NPU_CHOICES), default=BuildOptions.verify_npu, show_default=True,
              help="Run compiled NPU models in HTP emulation on every held-out call and compare with the CPU: all, the "
                   "quantized ones, off; auto: the quantized ones and those whose check takes under 2 minutes per chipset.")
@click.option("--min-npu-sqnr", default=BuildOptions.min_npu_sqnr, show_default=True, type=float,
              help="Gate: SQNR (dB) of each emulated NPU model against the CPU.")
@click.option("--qnn-optimization", type=click.Choice(QNN_OPTIMIZATION_CHOICES), default=BuildOptions.qnn_optimization,
              show_default=True, help="QNN graph finalization mode (1 fastest to compile, 3 most optimized); auto: 3, "
                                      "or 1 for float graphs with convolution activations over 32 MiB (the FP16 VAE "
                                      "decoder at 512x512). Quantized graphs get 2 for 1: mode 1 computes them wrongly.")
@click.option("--lookup-tables", type=click.Choice(LOOKUP_TABLE_CHOICES), default=BuildOptions.lookup_tables, show_default=True,
              help="How FP16 components store large lookup tables (the text encoder's token embeddings, 76 MB in "
                   "FP16): 8-bit codes with a scale per row, or FP16.")
@click.option("--ship", type=click.Choice(SHIP_CHOICES), default=BuildOptions.ship, show_default=True,
              help="What the bundle holds: the compiled NPU models (snapdragon), the portable ONNX, or both.")
@user_errors
def compile_command(model: Path | None, preset: str | None, tokenizer: Path | None, vae_decoder: str | None,
                    allow_pickle: bool, target: str,
                    precision: str | None, steps: int, guidance_scale: float, sizes: tuple[str, ...],
                    height: int | None, width: int | None, output: Path,
                    cache_dir: Path | None, force: bool, calibration_prompts: Path | None, calibration_size: int,
                    min_sqnr: float, max_float_fraction: float, min_psnr: float, min_prompt_sensitivity: float,
                    fidelity_images: int, chipsets: tuple[str, ...], allow_cpu_fallback: bool, aihub: bool,
                    verify_npu: str, min_npu_sqnr: float, qnn_optimization: str, lookup_tables: str, ship: str) -> None:
    """Export, check, quantize and bundle a model for a target."""
    from .compiler import compile_bundle, default_cache_dir
    from .options import check_request
    from .sources.resolve import resolve_source

    options = BuildOptions(target=target, precision=precision, steps=steps, guidance_scale=guidance_scale,
                           sizes=image_sizes(sizes, height, width), force=force, calibration_prompts=calibration_prompts,
                           calibration_size=calibration_size, quantize=QuantizeSettings(min_sqnr, max_float_fraction),
                           fidelity=FidelityGates(min_psnr, min_prompt_sensitivity), fidelity_images=fidelity_images,
                           chipsets=chipsets, allow_cpu_fallback=allow_cpu_fallback, aihub=aihub,
                           verify_npu=verify_npu, min_npu_sqnr=min_npu_sqnr, qnn_optimization=qnn_optimization,
                           lookup_tables=lookup_tables, ship=ship)
    check_request(options, output)
    source = resolve_source(model, preset, tokenizer, allow_pickle, vae_decoder)
    compile_bundle(source, options, output, cache_dir or default_cache_dir(), sys.argv, console)


def image_sizes(sizes: tuple[str, ...], height: int | None, width: int | None) -> tuple[ImageSize, ...]:
    """--size values, or the one size --height/--width give (512 where left out)."""
    if sizes and (height or width):
        raise UserError("--size and --height/--width both give the image size; use --size WIDTHxHEIGHT alone")
    if sizes:
        return tuple(parse_size(size) for size in sizes)
    return ((height or DEFAULT_SIZE[0], width or DEFAULT_SIZE[1]),)


@main.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.argument("prompt")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("-o", "--output", default="image.png", show_default=True, type=click.Path(path_type=Path))
@click.option("--noise", type=click.Path(path_type=Path), help="An .npz with 'latent' and 'step_noise' to use instead of seeded noise.")
@click.option("--save-noise", type=click.Path(path_type=Path), help="Write the noise used to this .npz (for comparing runtimes).")
@click.option("--threads", type=int, help="onnxruntime intra-op threads (cpu backend).")
@click.option("--backend", type=click.Choice(["cpu", "npu-emulator"]), default="cpu", show_default=True,
              help="cpu: the portable models on onnxruntime; npu-emulator: the compiled Hexagon NPU models in "
                   "onnxruntime-qnn's HTP emulation (slow: about 0.2 GMAC/s).")
@click.option("--chipset", help="npu-emulator: which compiled chipset to run (default: the bundle's first).")
@click.option("--size", help="Image size WIDTHxHEIGHT, one of the bundle's (default: its first; 'inspect' lists them).")
@user_errors
def generate(bundle: Path, prompt: str, seed: int, output: Path, noise: Path | None, save_noise: Path | None,
             threads: int | None, backend: str, chipset: str | None, size: str | None) -> None:
    """Generate an image from a bundle on this machine: the CPU reference runtime, or the NPU models emulated."""
    from .bundle.manifest import load_bundle
    from .runtime.images import save_png
    from .runtime.pipeline import Noise, Text2ImagePipeline

    if output.is_dir():
        raise UserError(f"output {output} is a folder; pass an image path such as image.png")
    if chipset and backend != "npu-emulator":
        raise UserError("--chipset applies to --backend npu-emulator only")
    loaded = load_bundle(bundle)
    pipeline = Text2ImagePipeline.from_bundle(loaded, threads, backend, chipset, size)
    noise_values = Noise.load(noise, pipeline.plan) if noise else Noise.seeded(seed, pipeline.plan)
    if save_noise:
        noise_values.save(save_noise)
    result = pipeline(prompt, noise_values)
    save_png(result.to_uint8(), output)
    for component, provider in pipeline.providers().items():
        model = pipeline.models[component].relative_to(loaded.folder).as_posix()
        calls = [ms for name, ms in result.timings_ms.items() if name.startswith(component) or
                 (component == "unet" and name.startswith("unet_step"))]
        console.print(f"  {component}: {provider}, {sum(calls):.0f} ms ({model})", soft_wrap=True)
    console.print(f"wrote {output}  ({result.timings_ms['total']:.0f} ms)")


@main.command()
@user_errors
def targets() -> None:
    """List the compile targets and the Snapdragon chipset profiles."""
    from .targets import TARGETS
    from .targets.chipsets import load_chipsets

    out = Console(highlight=False)
    for target in TARGETS.values():
        out.print(f"[bold]{target.name}[/bold]: {target.description} (default precision {target.default_precision})")
    chipsets = load_chipsets().values()
    rows = [[chip.name + (" *" if chip.default else ""), chip.soc, chip.hexagon_arch, chip.aihub_device,
             f"{chip.npu_int8_tops:g}", f"{chip.memory_bandwidth_gbps:g}"] for chip in chipsets]
    show(out, table(["chipset", "SoC", "Hexagon", "AI Hub --device", "INT8 TOPS", "GB/s"], rows,
                    copyable=["chipset", "SoC", "Hexagon", "AI Hub --device"],
                    title="Snapdragon chipsets (--chipset; * the default)", box=box.SIMPLE, pad_edge=False))
    out.print("Phones built on each chipset:")
    for chip in chipsets:
        if chip.example_phones:
            out.print(f"  {chip.name}: {', '.join(chip.example_phones)}", soft_wrap=True)


@main.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--no-verify", is_flag=True, help="Skip checksum verification.")
@user_errors
def inspect(bundle: Path, no_verify: bool) -> None:
    """Summarise a bundle: components, sizes, precisions, inputs/outputs and sampling plan."""
    from .bundle.manifest import load_bundle

    manifest = load_bundle(bundle, verify=not no_verify).manifest
    out = Console(highlight=False)
    model = manifest["model"]
    out.print(f"[bold]{bundle}[/bold]  {model['description']}  {', '.join(manifest['sizes'])}  "
              f"target {manifest['target']['name']}  schema {manifest['schema_version']}")
    components, tensors = [], []
    for name, component in manifest["components"].items():
        portable = component.get("file", "(compiled only)")
        size = sum(entry["size"] for file, entry in manifest["files"].items() if file.startswith(portable))
        held_out = component.get("fidelity", {}).get("sqnr_db")
        if "shared_weights" in component and "file" in component:
            shared = component["shared_weights"]
            portable += f" + {shared} ({manifest['files'][shared]['size'] / 2**20:.1f} MB, every size's)"
        components.append([name, portable, f"{size / 2**20:.1f}", component["precision"],
                           f"{component['parity']['sqnr_db']:.1f}" if "parity" in component else "-",
                           f"{held_out:.1f}" if held_out is not None else "-"])
        tensors += [[name, direction[:-1], spec["name"], spec["dtype"], str(spec["shape"])]
                    for direction in ("inputs", "outputs") for spec in component[direction]]
    show(out, table(["component", "file", "MB", "precision", "vs torch dB", "held-out dB"], components,
                    copyable=["component", "file"], title="Components"))
    show(out, table(["component", "io", "tensor", "dtype", "shape"], tensors, copyable=["component", "tensor", "shape"],
                    title="Inputs and outputs"))
    npu = [[name, chip, emulation_summary(entry.get("emulated"))]
           for name, component in manifest["components"].items() for chip, entry in component.get("compiled", {}).items()]
    if npu:
        show(out, table(["component", "chipset", "HTP emulation vs CPU"], npu, copyable=["component", "chipset"],
                        title="NPU models"))
    sampling = manifest["sampling"]
    show(out, table(["step", "timestep", "alpha_cumprod", "alpha_cumprod_prev", "c_skip", "c_out"],
                    [[str(index), str(step["timestep"]), f"{step['alpha_cumprod']:.6f}", f"{step['alpha_cumprod_prev']:.6f}",
                      f"{step['c_skip']:.3e}", f"{step['c_out']:.6f}"] for index, step in enumerate(sampling["steps"], 1)],
                    title="LCM sampling plan"))
    guidance = "none (LCM-LoRA style)" if sampling["guidance_embedding"] is None else f"{len(sampling['guidance_embedding'])}-d embedding"
    latents = "; ".join(f"{size} latent {entry['latent_shape']}" for size, entry in manifest["sizes"].items())
    out.print(f"guidance scale {sampling['guidance_scale']} ({guidance}); {latents}; "
              f"tokenizer {manifest['tokenizer']['type']} max {manifest['tokenizer']['max_length']} tokens; "
              f"{len(manifest['files'])} files verified" + (" (not verified)" if no_verify else ""))


def emulation_summary(emulated: dict | None) -> str:
    """What --verify-npu found for one compiled model: each held-out call's SQNR against the CPU, or why not run."""
    if not emulated:
        return "not run"
    if "skipped" in emulated:
        return f"not run: {emulated['skipped']}"
    calls = ", ".join(f"{call['sample']} {call['sqnr_vs_cpu_db']:.1f} dB" for call in emulated["calls"])
    return calls + (f" at {emulated['size']}" if "size" in emulated else "")


def _fraction(text: str) -> float:
    """'5%' or '0.05' -> 0.05."""
    try:
        return float(text.rstrip("%")) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise UserError(f"--max-regression {text!r} is not a fraction; use e.g. 5% or 0.05")


@main.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--backend", type=click.Choice(["estimate", "emulator", "ort", "aihub"]), default="estimate", show_default=True,
              help="estimate: calibrated roofline; emulator: simulated cycles of the compiled NPU models in HTP "
                   "emulation; ort: measured on this CPU; aihub: measured on a phone in Qualcomm AI Hub.")
@click.option("--chipset", help="Chipset profile for estimate, emulator and aihub (default: the bundle's first, else snapdragon-8-gen-3).")
@click.option("--device", help="AI Hub device name (default: the chipset profile's).")
@click.option("--runs", default=3, show_default=True, type=int, help="ort: measured calls per component.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default="profile", show_default=True,
              help="Folder for profile.json, profile.csv and profile.html.")
@click.option("--baseline", type=click.Path(path_type=Path), help="A previous profile.json to compare with.")
@click.option("--max-regression", default="5%", show_default=True, help="Allowed slow-down per component and block.")
@click.option("--timeout", default=DEFAULT_TIMEOUT_S, show_default=True, type=int, help="aihub: seconds to wait for each job.")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="aihub: where submitted job ids are kept for resuming.")
@click.option("--size", help="Which of the bundle's image sizes (WIDTHxHEIGHT) to profile (default: its first).")
@user_errors
def profile(bundle: Path, backend: str, chipset: str | None, device: str | None, runs: int, output: Path,
            baseline: Path | None, max_regression: str, timeout: int, cache_dir: Path | None, size: str | None) -> None:
    """Per-layer profile of a bundle: JSON, CSV, an HTML report with charts, and a regression gate."""
    import tempfile

    from .bundle.manifest import load_bundle
    from .compiler import default_cache_dir
    from .profile import gate, render
    from .profile.model import load_profile
    from .targets import chipsets

    allowed = _fraction(max_regression)
    previous = load_profile(baseline) if baseline else None
    if output.exists() and not output.is_dir():
        raise UserError(f"output {output} is a file; pass a folder for the profile files")
    loaded = load_bundle(bundle)
    loaded.size(size)  # a size the bundle lacks is refused before any work
    bundle_chips = [chip["name"] for chip in loaded.manifest["target"].get("chipsets", [])]
    chip = chipsets.chipset(chipset or (bundle_chips[0] if bundle_chips else None))
    with tempfile.TemporaryDirectory() as scratch:
        if backend == "estimate":
            from .profile.estimate import estimate_bundle

            result = estimate_bundle(loaded, chip, size)
        elif backend == "emulator":
            from .profile.emulator_backend import profile_bundle

            result = profile_bundle(loaded, chip, Path(scratch), size)
        elif backend == "ort":
            from .profile.ort_backend import profile_bundle

            result = profile_bundle(loaded, runs, Path(scratch), size)
        else:
            from .profile.aihub_backend import profile_bundle
            from .targets import aihub

            hub = aihub.load_hub()
            ledger = aihub.JobLedger((cache_dir or default_cache_dir()) / "aihub-jobs.json")
            result = profile_bundle(hub, aihub.make_client(hub), loaded, device or chip.aihub_device, chip.name, ledger,
                                    Path(scratch), timeout, size)
    paths = render.write_outputs(result, output)
    render.print_summary(result, Console(highlight=False))
    console.print(f"wrote {paths['json']}, {paths['csv']} and {paths['html']}")
    if previous is not None:
        _report_regressions(gate.compare(result, previous, allowed), baseline, allowed)


def _report_regressions(problems: list[Regression], baseline: Path, allowed: float) -> None:
    """Each regression on a line of its own, then a one-line error if there is any (the gate fails)."""
    for problem in problems:
        console.print(f"[red]regression[/red] {escape(problem.what)}: {problem.baseline} -> {problem.current} "
                      f"({problem.change})", soft_wrap=True)
    if problems:
        raise UserError(f"{len(problems)} regression(s) against {baseline} (max {allowed:.0%}); see the lines above")
    console.print(f"no regression against {baseline} (max {allowed:.0%})", markup=False, soft_wrap=True)


@main.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--chipset", "chipsets", multiple=True,
              help="Chipset profile (repeatable: one estimate per chipset; default: snapdragon-8-gen-3). See 'targets'.")
@click.option("--precision", type=click.Choice(["float", "w8a8", "w8a16"]),
              help="What the graph will run at on the NPU (default: a QDQ graph's own, else float).")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=DIM,DIM,...",
              help="Shape of a graph input with dynamic dimensions, e.g. sample=1,4,64,64 (repeatable; "
                   "default: each dynamic dimension taken as 1).")
@click.option("--top", type=click.IntRange(min=1), help="Also list the N slowest op types and layers.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per model and chipset on stdout.")
@click.option("--baseline", type=click.Path(path_type=Path),
              help="What a previous 'estimate --json' printed: fail if a model got slower (in total or per op type).")
@click.option("--max-regression", default="5%", show_default=True, help="Allowed slow-down per model and op type.")
@click.option("--ask-qnn", is_flag=True,
              help="Name the layers QNN runs on the CPU as the installed onnxruntime-qnn places them, not by the "
                   "estimate's rules: it compiles each model (seconds for a small graph, minutes for a UNet).")
@user_errors
def estimate(models: tuple[Path, ...], chipsets: tuple[str, ...], precision: str | None, input_shapes: tuple[str, ...],
             top: int | None, as_json: bool, baseline: Path | None, max_regression: str, ask_qnn: bool) -> None:
    """Projected NPU time of one call of any ONNX model (the 'estimate' backend of 'profile')."""
    import json
    import time
    from dataclasses import asdict, replace

    from .graphs import graph_precision, load_shaped, parse_input_shape
    from .profile import gate
    from .profile.estimate import LatencyModel, estimate_graph
    from .profile.render import milliseconds, print_breakdown
    from .targets.chipsets import chipset as chipset_profile
    from .targets.snapdragon import placed_on_cpu

    chips = [chipset_profile(name) for name in dict.fromkeys(chipsets or [None])]
    allowed = _fraction(max_regression)
    previous = gate.load_estimates(baseline) if baseline else {}
    given = _estimable_models(models, dict(map(parse_input_shape, input_shapes)))
    problems = []
    for model in models:
        shaped = load_shaped(model, given[model])
        runs_at = precision or graph_precision(shaped.model)
        for chip in chips:
            latency = LatencyModel.of(chip, runs_at)
            graph = estimate_graph(shaped, model.stem, runs_at, chip)
            if ask_qnn:
                start = time.perf_counter()
                graph = replace(graph, on_cpu=placed_on_cpu(model, given[model], chip))
                console.print(f"{model}: placed by onnxruntime-qnn for {chip.marketing_name} in "
                              f"{time.perf_counter() - start:.1f} s", markup=False, soft_wrap=True)
            result = {"model": str(model), "chipset": chip.name, "precision": runs_at, **graph.to_json(top or 0),
                      "held_out_error": asdict(latency.band) if latency.band else None}
            if (str(model), chip.name) in previous:
                problems += gate.compare_estimates(result, previous[str(model), chip.name], allowed)
            elif baseline:
                console.print(f"{model} on {chip.name}: not in the baseline {baseline}, not compared", markup=False,
                              soft_wrap=True)
            if as_json:
                click.echo(json.dumps(result))
                continue
            notes = [f"dynamic dimensions of {', '.join(graph.dynamic_inputs_as_1)} taken as 1 (give them with "
                     "--input-shape)"] if graph.dynamic_inputs_as_1 else []
            if graph.not_costed:
                notes.append(f"not costed, with no inferred output shape or with subgraphs: {_counts(graph.not_costed)}")
            if graph.read_as_qdq:
                notes.append(f"read as the QDQ graph they stand for: {_counts(graph.read_as_qdq)}")
            if graph.on_cpu:
                quantized = graph.on_cpu.keys() & graph.read_as_qdq.keys()
                notes.append(f"onnxruntime's QNN provider runs {_counts(graph.on_cpu)} on the CPU"
                             + (": quantize statically in QDQ format to run them on the NPU" if quantized else ""))
            click.echo(f"{model}: {milliseconds(graph.total_ms)} ms per call on {chip.marketing_name} at {runs_at} "
                       f"(analytical estimate, {'; '.join([latency.describe_band(), *notes])})")
            if top:
                print_breakdown(graph, top, Console(highlight=False))
    if baseline:
        estimated = {(str(model), chip.name) for model in models for chip in chips}
        for model, chip_name in sorted(previous.keys() - estimated):
            console.print(f"{model} on {chip_name}: in the baseline {baseline}, not estimated now", markup=False,
                          soft_wrap=True)
        _report_regressions(problems, baseline, allowed)


def _counts(op_types: dict[str, int]) -> str:
    return ", ".join(f"{count} {op_type}" for op_type, count in op_types.items())


def _estimable_models(models: tuple[Path, ...], shapes: dict[str, list[int]]) -> dict[Path, dict[str, list[int]]]:
    """The `--input-shape`s each model has an input for, once every model is checked to be an ONNX graph that the
    estimate can read and every shape to fit one of them."""
    import onnx
    from google.protobuf.message import DecodeError

    from .graphs import fix_input_shapes, graph_inputs

    inputs, given = {}, {}
    for model in models:
        if model.is_dir():
            raise UserError(f"{model} is a folder; pass ONNX model files (a bundle's estimate: profile {model} "
                            "--backend estimate)")
        if not model.is_file():
            raise UserError(f"{model} is not a file; pass ONNX model files")
        try:
            loaded = onnx.load(str(model), load_external_data=False)
        except (DecodeError, OSError, ValueError) as error:
            raise UserError(f"{model} is not an ONNX model ({first_line(error)}); pass a .onnx file")
        if not loaded.graph.node:  # empty bytes, or bytes protobuf reads as a model with no graph
            raise UserError(f"{model} holds no ONNX graph (empty, cut short or not ONNX); pass a .onnx model file")
        if any(node.op_type == "EPContext" for node in loaded.graph.node):
            raise UserError(f"{model} is a compiled context model (EPContext), whose layers are in a binary the "
                            "estimate cannot read; pass the ONNX graph it was compiled from")
        inputs[model] = graph_inputs(loaded)
        given[model] = {name: shape for name, shape in shapes.items() if name in inputs[model]}
        try:
            fix_input_shapes(loaded, given[model])
        except UserError as error:
            raise UserError(f"{model}: {error}; keep those and give a number for each other dimension")
    if unknown := sorted(shapes.keys() - {name for names in given.values() for name in names}):
        known = "; ".join(f"{model}: {', '.join(names)}" for model, names in inputs.items())
        raise UserError(f"--input-shape names {', '.join(unknown)}, which no graph passed has as an input ({known})")
    return given


@main.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.argument("android_app", type=click.Path(path_type=Path), default="android_app")
@click.option("--chipset", "chipsets", multiple=True, help="Install only this chipset's NPU models (repeatable; default: all).")
@click.option("--ship", type=click.Choice(SHIP_CHOICES), default="both", show_default=True,
              help="Install the compiled NPU models, the portable ONNX, or both.")
@user_errors
def package(bundle: Path, android_app: Path, chipsets: tuple[str, ...], ship: str) -> None:
    """Install a bundle, or the part of it the target phone needs, into the Android demo app's assets."""
    from .bundle.android import install_into_app

    target = install_into_app(bundle, android_app, ship, chipsets)
    console.print(f"installed {bundle} into {target}\nnext: open {android_app} in Android Studio, connect a "
                  "Snapdragon phone and Run 'app' (or, with Gradle installed: cd android_app && gradle installDebug)")


@main.command()
@click.option("--cache-dir", type=click.Path(path_type=Path), help="The stage cache (default ~/.cache/edgefusion-export).")
@click.option("--prune", "prune_days", type=click.FloatRange(min=0), help="Remove the stages no build has used for this many days (0: all).")
@user_errors
def cache(cache_dir: Path | None, prune_days: float | None) -> None:
    """Show what the stage cache holds, per pass, and prune it. Leftovers of killed builds are removed."""
    from datetime import datetime

    from .compiler import default_cache_dir
    from .stages import cached_stages, prune, sweep

    root = cache_dir or default_cache_dir()
    out = Console(highlight=False)
    freed = sweep(root)
    if freed:
        out.print(f"removed {freed / 2**20:.1f} MB left by killed builds")
    if prune_days is not None:
        removed = prune(root, prune_days * 86400)
        out.print(f"removed {len(removed)} stages ({sum(stage.size for stage in removed) / 2**20:.1f} MB) "
                  f"unused for {prune_days:g} days")
    stages = cached_stages(root)
    by_pass: dict[str, list] = {}
    for stage in stages:
        by_pass.setdefault(stage.name, []).append(stage)
    rows = [[name, str(len(entries)), f"{sum(stage.size for stage in entries) / 2**20:.1f}",
             datetime.fromtimestamp(max(stage.last_used for stage in entries)).strftime("%Y-%m-%d %H:%M")]
            for name, entries in by_pass.items()]
    show(out, table(["pass", "entries", "MB", "last used"], rows, copyable=["pass"], title=f"stage cache {root}",
                    box=box.SIMPLE, pad_edge=False))
    out.print(f"{len(stages)} stages, {sum(stage.size for stage in stages) / 2**20:.1f} MB")


if __name__ == "__main__":
    main()
