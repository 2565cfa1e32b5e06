"""Reproducible builds: the same model and options, built three times from empty caches, give byte-identical bundle
files (the build report, a record of timings, aside), wherever the cache and the bundle are."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgefusion_export.export.onnx_export import simplify
from edgefusion_export.graphs import save_model
from edgefusion_export.runtime.sessions import cpu_session

from .conftest import compile_args, run_cli, save_diffusers_folder
from .test_bad_input import assert_clean_error

# W8A16 text encoder and UNet (and decoder); small calibration, gates relaxed: what is built matters, not its quality
QUANTIZED = ("--target", "snapdragon", "--precision", "w8a16", "--calibration-size", "4",
             "--fidelity-images", "0", "--min-sqnr", "10")


def bundle_digests(bundle) -> dict[str, str]:
    """sha256 per file; the manifest's without the command line, which names the output and cache paths."""
    digests = {path.relative_to(bundle).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
               for path in sorted(bundle.rglob("*")) if path.is_file() and path.name != "build_report.json"}
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["provenance"]["command_line"]
    digests["manifest.json"] = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    return digests


@pytest.mark.parametrize("architecture", ["tiny preset", "wider unseen model"])
def test_three_clean_builds_give_byte_identical_bundles(architecture, tmp_path, monkeypatch):
    """QNN numbers graphs per process (each compile runs in a fresh one, so cached stages do not shift them) and
    onnxruntime names them after the path the model is opened by (opened by its file name, any cache path serves).
    The three builds run at once, each in its own process, with their own cache and output paths."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    model = (("--preset", "tiny") if architecture == "tiny preset" else
             ("--model", save_diffusers_folder(tmp_path / "model", block_out_channels=[48, 96])))
    places = [tmp_path / f"build-{index}" / ("nested" * index) for index in range(3)]
    builds = [subprocess.Popen([sys.executable, "-m", "edgefusion_export.cli",
                                *map(str, compile_args(where / "bundle", where / "cache", *model, *QUANTIZED))],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for where in places]
    for build in builds:
        output = build.communicate()[0]
        assert build.returncode == 0, output
    digests = [bundle_digests(where / "bundle") for where in places]
    assert digests[0] == digests[1] == digests[2]
    assert len([name for name in digests[0] if name.endswith("_qnn.bin")]) == 3
    assert '"created": "2023-11-14T22:13:20+00:00"' in (places[0] / "bundle" / "manifest.json").read_text()


def test_a_malformed_source_date_epoch_is_refused(tmp_path, monkeypatch, tiny_bundle, cache_dir):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    assert_clean_error(run_cli(*compile_args(tmp_path / "b", cache_dir, "--preset", "tiny")), "SOURCE_DATE_EPOCH")


def test_simplify_writes_each_weight_once(tmp_path):
    """The simplify pass saves the rewritten graph, lets onnxsim read that file, and saves what onnxsim folds over it:
    the data file then holds the folded weight alone (onnx appends to a data file already there), and the graph
    computes what the exported one did."""
    rng = np.random.default_rng(0)
    scale, shift = (numpy_helper.from_array(rng.standard_normal(1024).astype(np.float32), name) for name in ("a", "b"))
    nodes = [helper.make_node("Mul", ["a", "b"], ["ab"]), helper.make_node("Add", ["x", "ab"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1024])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1024])], [scale, shift])
    exported = save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), tmp_path / "model.onnx")
    (tmp_path / "simplified").mkdir()
    path, info = simplify(exported, tmp_path / "simplified")
    assert (info["nodes_before"], info["nodes_after"], info["simplified"]) == (2, 1, True)
    assert (path.parent / "model.onnx.data").stat().st_size == 1024 * 4
    x = rng.standard_normal((1, 1024)).astype(np.float32)
    expected, actual = (cpu_session(p).run(None, {"x": x})[0] for p in (exported, path))
    np.testing.assert_array_equal(actual, expected)
    assert [node.op_type for node in onnx.load(str(path)).graph.node] == ["Add"]
