"""Edits to the exported ONNX graphs, made in memory when a process opens them.

The exports fix their input shapes (YuNet 1x3x640x640, the embedders and heads a batch of one)
although their layers work at any size; these edits make those dimensions symbolic.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def any_size_input(model: onnx.ModelProto) -> onnx.ModelProto:
    """YuNet with its 640x640 input made symbolic. Its reshapes use -1 and its upsamplings
    scales, so it runs at any multiple of 32; the padded-out part of a 640 canvas only cost
    time."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in model.graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = "anchors"
    del model.graph.value_info[:]  # intermediate shapes were inferred for the fixed input
    return model


def any_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with its batch dimension symbolic, so that one call serves many crops.

    Reshapes to a constant shape that starts with the batch of one (fr_feature's [1, -1],
    YuNet's [1, -1, 4]) copy the batch from their input instead (0 in ONNX's Reshape).
    """
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    constants = {t.name: t for t in model.graph.initializer}
    constants.update({n.output[0]: n.attribute[0].t for n in model.graph.node if n.op_type == "Constant"})
    for node in model.graph.node:
        shape = constants.get(node.input[1]) if node.op_type == "Reshape" else None
        if shape is None:
            continue
        values = numpy_helper.to_array(shape)
        if values.size and values[0] == 1:
            shape.CopyFrom(numpy_helper.from_array(np.concatenate([[0], values[1:]]).astype(values.dtype), shape.name))
    del model.graph.value_info[:]
    return model
