"""ONNX files as the passes read and write them, and the static shapes of their tensors. No torch."""

from __future__ import annotations

from pathlib import Path

import onnx


def load_full(path: Path) -> onnx.ModelProto:
    """A model with its external weights loaded."""
    return onnx.load(str(path), load_external_data=True)


def save_model(model: onnx.ModelProto, path: Path) -> Path:
    """Save with all weights in one external data file beside the graph, without tool metadata_props."""
    del model.metadata_props[:]
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=f"{path.name}.data", size_threshold=1024)
    return path


def static_shapes(model: onnx.ModelProto, float_only: bool = False) -> dict[str, list[int]]:
    """Fully known shapes of the graph's values (inputs, outputs and inferred intermediates), by name.

    Shape inference serialises the model, so pass a graph whose weights stay external when it is over 2 GB.
    """
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for value in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        tensor_type = value.type.tensor_type
        dims = [dim.dim_value for dim in tensor_type.shape.dim]
        if dims and all(dims) and (not float_only or tensor_type.elem_type == onnx.TensorProto.FLOAT):
            shapes[value.name] = dims
    return shapes
