"""Large lookup tables of FP16 graphs stored in 8 bits: exact codes, rows within half a step, on the NPU as one
partition that computes what the CPU does."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgefusion_export.graphs import graph_precision, save_model
from edgefusion_export.metrics import sqnr_db
from edgefusion_export.quantize.lookup_tables import MIN_TABLE_VALUES, large_tables, quantize_rows, store_lookup_tables_8bit
from edgefusion_export.runtime.sessions import cpu_session, htp_session
from edgefusion_export.targets.chipsets import chipset
from edgefusion_export.targets.snapdragon import compile_for_chipset, is_quantized

ROWS, WIDTH, TOKENS = 4096, MIN_TABLE_VALUES // 4096, 77


def lookup_graph(table: np.ndarray, opset: int = 18, also_multiplied: bool = False) -> onnx.ModelProto:
    """ids -> Gather(table) -> + position -> MatMul, in float16 (a text encoder's first layer), float32 output."""
    rng = np.random.default_rng(1)
    width = table.shape[1]
    initializers = [numpy_helper.from_array(table.astype(np.float16), "table"),
                    numpy_helper.from_array((rng.standard_normal((TOKENS, width)) * 0.01).astype(np.float16), "position"),
                    numpy_helper.from_array((rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float16), "w")]
    nodes = [helper.make_node("Gather", ["table", "ids"], ["rows"], axis=0),
             helper.make_node("Add", ["rows", "position"], ["x"]),
             helper.make_node("MatMul", ["x", "w"], ["y16"]),
             helper.make_node("Cast", ["y16"], ["y"], to=TensorProto.FLOAT)]
    if also_multiplied:  # a table tied to an output projection is not only looked up in
        nodes.append(helper.make_node("MatMul", ["y16", "table"], ["logits"]))
    graph = helper.make_graph(nodes, "lookup", [helper.make_tensor_value_info("ids", TensorProto.INT32, [1, TOKENS])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, TOKENS, width])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def saved(model: onnx.ModelProto, folder: Path, name: str = "lookup.onnx") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return save_model(model, folder / name)


@pytest.fixture(scope="module")
def table() -> np.ndarray:
    return (np.random.default_rng(0).standard_normal((ROWS, WIDTH)) * 0.02).astype(np.float32)


@pytest.fixture(scope="module")
def ids() -> np.ndarray:
    return np.random.default_rng(2).integers(0, ROWS, (1, TOKENS)).astype(np.int32)


def test_codes_and_scales_by_hand():
    codes, scales = quantize_rows(np.array([[2.54, -1.27, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0]], np.float32))
    assert scales.dtype == np.float16 and scales[0] == np.float16(0.02) and scales[1] == 0
    # float16(0.02) = 0.0200043: 2.54 -> 126.97 -> 127, -1.27 -> -63.49 -> -63, 0.5 -> 24.99 -> 25; then + 128
    assert codes.tolist() == [[255, 65, 153, 128], [128, 128, 128, 128]]


def test_the_rewritten_graph_looks_up_rows_within_half_a_step(table, ids, tmp_path):
    original = lookup_graph(table)
    rewritten = store_lookup_tables_8bit(lookup_graph(table))
    onnx.checker.check_model(rewritten)
    assert {t.name for t in rewritten.graph.initializer} >= {"table.codes", "table.row_scales"}
    assert "table" not in {t.name for t in rewritten.graph.initializer}
    gathered = {}
    for name, model in (("fp16", original), ("int8", rewritten)):
        model.graph.output.append(helper.make_tensor_value_info("rows", TensorProto.FLOAT16, [1, TOKENS, WIDTH]))
        gathered[name] = cpu_session(saved(model, tmp_path / name)).run(["rows"], {"ids": ids})[0]
    steps = quantize_rows(table)[1].astype(np.float32)[ids[0]][:, None]
    error = np.abs(gathered["int8"].astype(np.float32) - gathered["fp16"].astype(np.float32))[0]
    assert np.all(error <= steps * 0.5 + 1e-4)  # + the float16 rounding of code x scale
    # rows of 256 Gaussian values peak near 2.9 sigma: 10 log10(12 x 127^2 / 2.9^2) = 43.6 dB
    assert 42.5 < sqnr_db(gathered["fp16"], gathered["int8"]) < 44.5


def test_small_or_shared_tables_stay_as_they_are(table):
    assert large_tables(lookup_graph(table[: ROWS // 2])) == set()  # below MIN_TABLE_VALUES
    assert large_tables(lookup_graph(table, also_multiplied=True)) == set()
    tied = lookup_graph(table, also_multiplied=True)
    assert store_lookup_tables_8bit(tied) == tied


def test_an_fp16_graph_with_8bit_tables_is_not_a_quantized_graph(table, tmp_path):
    path = saved(store_lookup_tables_8bit(lookup_graph(table)), tmp_path)
    assert graph_precision(onnx.load(str(path))) == "float" and not is_quantized(path)


def test_the_npu_gathers_8bit_rows_in_one_partition_as_the_cpu_does(table, ids, tmp_path):
    chip = chipset("snapdragon-8-gen-3")
    sizes, outputs = {}, {}
    for name, model in (("fp16", lookup_graph(table)), ("int8", store_lookup_tables_8bit(lookup_graph(table)))):
        path = saved(model, tmp_path / name)
        compilation = compile_for_chipset(path, chip, path.parent, allow_cpu_fallback=False)
        assert (compilation.partitions, compilation.cpu_nodes) == (1, [])
        sizes[name] = sum((path.parent / binary).stat().st_size for binary in compilation.context_binaries)
        reference = cpu_session(path, exact=True).run(None, {"ids": ids})[0]
        outputs[name] = htp_session(path.parent / compilation.file, chip.htp_target).run(None, {"ids": ids})[0]
        assert sqnr_db(reference, outputs[name]) > 60, name
    assert sizes["int8"] < 0.6 * sizes["fp16"]  # a 2 MiB table in 1 MiB: the codes, 8 KiB of scales, the graph
