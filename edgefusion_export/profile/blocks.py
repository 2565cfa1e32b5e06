"""Which model block a layer belongs to: node names carry their torch module scope from the export."""

from __future__ import annotations

from pathlib import Path



def block_of(component: str, node_name: str) -> str:
    """The model block a node belongs to, e.g. `down_blocks.1.attentions.0` or `encoder.layers.3`."""
    scope = node_name.rpartition("/")[0]
    parts = scope.split(".")[1:] if "." in scope else []  # drop the wrapper attribute (unet., vae., ...)
    if not parts:
        return "other"
    if parts[0] in ("down_blocks", "up_blocks"):
        return ".".join(parts[:4])
    if parts[0] == "mid_block":
        return ".".join(parts[:3])
    if parts[0] in ("encoder", "decoder"):  # text encoder layers, VAE decoder blocks
        if len(parts) > 1 and parts[1] == "layers":
            return ".".join(parts[:3])
        if len(parts) > 1 and parts[1] in ("up_blocks", "down_blocks"):
            return ".".join(parts[:5])
        if len(parts) > 1 and parts[1] == "mid_block":
            return ".".join(parts[:4])
        return ".".join(parts[:2])
    return parts[0]


def graph_blocks(model_path: Path, component: str) -> dict[str, str]:
    """Block of every node of a graph; nodes without a module scope (Q/DQ, casts) take their neighbour's."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    blocks = {node.name: block_of(component, node.name) for node in model.graph.node}
    by_tensor: dict[str, str] = {}
    for _ in range(2):  # producers first, then consumers for nodes at the graph inputs
        for node in model.graph.node:
            if blocks[node.name] == "other":
                neighbours = [by_tensor.get(name) for name in [*node.input, *node.output]]
                blocks[node.name] = next((block for block in neighbours if block and block != "other"), "other")
            for name in [*node.input, *node.output]:
                if blocks[node.name] != "other":
                    by_tensor.setdefault(name, blocks[node.name])
    return blocks
