"""int8 compute graphs of the embedders, made from their fp32 graphs at install time.

SFace and fr_feature are over two thirds of an identify's CPU time, nearly all of it in
convolutions. ONNX Runtime runs a static QDQ graph's convolutions as QLinearConv (VNNI on AMD
EPYC), over twice as fast as fp32 (bench/int8.py; README, "Performance"). Static quantisation
needs each activation's range, and rounding every layer's weights and inputs shifts the mean of
its outputs a little, which the next layers carry on. Both were measured once on aligned faces
of LFW View 1's training photos (none of View 2's, on which accuracy is judged;
bench/int8_calibration.py) and are kept beside this module: the ranges as
``int8/<model>.json`` (ONNX Runtime's own calibration-cache format) and each convolution's
per-channel shift as ``int8/<model>.bias.json``, subtracted from its bias before quantising. So
``facesvc models`` makes the same graph from the same registry file on any machine, without
photos. Dynamic quantisation (no ranges needed) was measured too: its ConvInteger is slower than
fp32 on these cores.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import onnx
from onnx import helper, numpy_helper, version_converter

RANGES_DIR = Path(__file__).with_name("int8")
# QDQ's per-channel DequantizeLinear (its ``axis``) needs opset 13; fr_feature ships opset 9.
MIN_OPSET = 13
# How quantize_model edits a graph. Part of the recipe's digest (recipe_digest), so a cache
# built by an earlier recipe is rebuilt by ``facesvc models`` rather than kept.
RECIPE = (
    "batchnorm folded into conv; conv biases less the stored shifts; "
    "prelu on uint8: max and min by clip, depthwise 1x1 qlinearconv by a, qlinearadd"
)


def ranges_path(name: str) -> Path:
    """The activation ranges the int8 graph of model ``name`` is quantised with."""
    return RANGES_DIR / f"{name}.json"


def biases_path(name: str) -> Path:
    """The per-channel output shifts of model ``name``'s int8 convolutions, by output tensor."""
    return RANGES_DIR / f"{name}.bias.json"


def read_biases(path: Path) -> dict[str, np.ndarray]:
    return {tensor: np.asarray(shift, np.float64) for tensor, shift in json.loads(path.read_text()).items()}


def prepared(model: onnx.ModelProto) -> onnx.ModelProto:
    """The fp32 graph as it is calibrated and quantised: opset raised to MIN_OPSET. Tensor names
    are left alone, since the stored ranges are keyed by them."""
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return version_converter.convert_version(model, MIN_OPSET) if opset < MIN_OPSET else model


def recipe_digest(name: str) -> str:
    """Digest of what makes model ``name``'s int8 graph besides its fp32 source: the stored
    ranges and shifts, and RECIPE."""
    stored = ranges_path(name).read_bytes() + biases_path(name).read_bytes()
    return hashlib.sha256(stored + RECIPE.encode()).hexdigest()


def quantize_model(src: Path, dst: Path, ranges: Path, biases: dict[str, np.ndarray]) -> None:
    """Write the static int8 QDQ graph of the fp32 graph ``src`` at the stored ``ranges``:
    BatchNormalization folded into the convolutions (``fold_batchnorm``) and their ``biases``
    shifts subtracted (``shift_biases``) before, PRelu run on uint8 after (``integer_prelu``).
    Deterministic: the same inputs give the same bytes."""
    quantize_static_qdq(shift_biases(fold_batchnorm(prepared(onnx.load(str(src)))), biases), dst, ranges)
    model = integer_prelu(onnx.load(str(dst)))
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def quantize_static_qdq(model: onnx.ModelProto | Path, dst: Path, ranges: Path, calibration: object | None = None) -> None:
    """ONNX Runtime's static quantisation as facesvc does it: QDQ, weights int8 per output
    channel, activations uint8 per tensor. With ``calibration`` (an ONNX Runtime
    CalibrationDataReader of the model's inputs) the ranges are measured and written to
    ``ranges``; without, they are read from it."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with quiet_root_logger():
        quantize_static(
            model if isinstance(model, onnx.ModelProto) else str(model),
            str(dst),
            calibration,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            calibration_cache_path=str(ranges),
            # Each range the mean of the inputs' own (one input a batch): the extremes of all
            # 300 calibration faces at once widened the steps, and SFace's embeddings agreed
            # with fp32's to cosine 0.978 instead of 0.992 (bench/int8.py).
            extra_options={"CalibMovingAverage": True},
        )


@contextmanager
def quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's quantiser logs a line per tensor at INFO on the root logger; the CLI that
    runs it (``facesvc models``) logs at INFO."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def fold_batchnorm(model: onnx.ModelProto) -> onnx.ModelProto:
    """Each BatchNormalization that is a Conv's only reader folded into that Conv's weights and
    bias: the same function, one node fewer.

    Left in, a BatchNormalization runs in fp32 between a DequantizeLinear and a QuantizeLinear,
    and keeps ONNX Runtime from running the int8 graph in NHWC end to end (a Transpose either
    side of every QLinearConv): SFace 13.0 -> 10.8 ms (bench/int8.py). The folded Conv writes the
    BatchNormalization's output tensor, whose stored range is the one it is quantised at."""
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    readers = Counter(name for node in graph.node for name in node.input)
    readers.update(output.name for output in graph.output)
    writers = {node.output[0]: node for node in graph.node}
    kept = []
    for node in graph.node:
        conv = writers.get(node.input[0]) if node.op_type == "BatchNormalization" else None
        if conv is None or conv.op_type != "Conv" or readers[conv.output[0]] != 1 or conv.input[1] not in weights:
            kept.append(node)
            continue
        scale, shift, mean, var = (numpy_helper.to_array(weights[n]).astype(np.float64) for n in node.input[1:5])
        epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        kernel = numpy_helper.to_array(weights[conv.input[1]]).astype(np.float64)
        bias = numpy_helper.to_array(weights[conv.input[2]]).astype(np.float64) if len(conv.input) > 2 else 0.0
        factor = scale / np.sqrt(var + epsilon)
        stem = node.output[0]
        graph.initializer.extend([
            numpy_helper.from_array((kernel * factor.reshape(-1, *[1] * (kernel.ndim - 1))).astype(np.float32), f"{stem}_w"),
            numpy_helper.from_array(((bias - mean) * factor + shift).astype(np.float32), f"{stem}_b"),
        ])
        conv.input[:] = [conv.input[0], f"{stem}_w", f"{stem}_b"]
        conv.output[0] = stem
    del graph.node[:]
    graph.node.extend(kept)
    return _without_unread_weights(model)


def shift_biases(model: onnx.ModelProto, shifts: dict[str, np.ndarray]) -> onnx.ModelProto:
    """Each Conv writing a tensor named in ``shifts`` with that per-channel shift subtracted from
    its bias (a zero bias added where it has none). The int8 graph computes each convolution's
    mean output that much too high (measured by bench/int8_calibration.py); its quantised bias
    takes it back, at no cost."""
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    for conv in (n for n in graph.node if n.op_type == "Conv" and n.output[0] in shifts):
        shift = shifts[conv.output[0]]
        bias = numpy_helper.to_array(weights[conv.input[2]]).astype(np.float64) if len(conv.input) > 2 else np.zeros(len(shift))
        name = f"{conv.output[0]}_shifted_b"
        graph.initializer.append(numpy_helper.from_array((bias - shift).astype(np.float32), name))
        conv.input[2:] = [name]
    return _without_unread_weights(model)


def integer_prelu(model: onnx.ModelProto) -> onnx.ModelProto:
    """Each PRelu that the quantiser left between a DequantizeLinear and a QuantizeLinear
    computed on the uint8 tensors instead: PRelu(y) = max(y, 0) + a * min(y, 0) as

    - two Clips of the uint8 input at its zero point: max(y, 0) and min(y, 0), exactly;
    - a 1x1 depthwise QLinearConv of min(y, 0) by the slopes a: each channel's int8 weight is
      +-127 at its own scale, so every slope is exact (QLinearMul's one scale for all of them
      is not, and was slower). It writes at the PRelu output's stored scale: wherever it is
      not zero it is the output;
    - QLinearAdd of the two at the PRelu output's scale, so each value is rounded once, as by
      the QuantizeLinear it replaces.

    ONNX Runtime has no int8 PRelu: left as it is, each PRelu dequantises, runs in fp32 and
    quantises again, which in SFace took more time than all its convolutions (bench/int8.py).
    PRelus in any other place, or whose slopes are not a weight of one per channel, are left
    as they are."""
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    readers = Counter(name for node in graph.node for name in node.input)
    readers.update(output.name for output in graph.output)
    writers = {out: node for node in graph.node for out in node.output}
    quantizers = {node.input[0]: node for node in graph.node if node.op_type == "QuantizeLinear"}
    rewritten: dict[int, list[onnx.NodeProto]] = {}
    removed: set[int] = set()
    for prelu in (n for n in graph.node if n.op_type == "PRelu"):
        dequantize, quantize = writers.get(prelu.input[0]), quantizers.get(prelu.output[0])
        slopes = numpy_helper.to_array(weights[prelu.input[1]]) if prelu.input[1] in weights else None
        if (
            dequantize is None or dequantize.op_type != "DequantizeLinear" or readers[prelu.input[0]] != 1
            or quantize is None or readers[prelu.output[0]] != 1
            or slopes is None or slopes.ndim != 3 or slopes.shape[1:] != (1, 1)
        ):
            continue
        y, y_scale, y_zero = dequantize.input
        slopes = slopes.reshape(-1).astype(np.float64)
        kernel_scale = np.where(slopes == 0, 1.0, np.abs(slopes) / 127.0)
        stem = f"{prelu.output[0]}_uint8"
        graph.initializer.extend([
            numpy_helper.from_array(np.round(slopes / kernel_scale).astype(np.int8).reshape(-1, 1, 1, 1), f"{stem}_w"),
            numpy_helper.from_array(kernel_scale.astype(np.float32), f"{stem}_w_scale"),
            numpy_helper.from_array(np.zeros(slopes.size, np.int8), f"{stem}_w_zero"),
        ])
        out_scale, out_zero = quantize.input[1:]
        rewritten[id(dequantize)] = [
            helper.make_node("Clip", [y, y_zero], [f"{stem}_pos"], name=f"{stem}_max"),
            helper.make_node("Clip", [y, "", y_zero], [f"{stem}_neg"], name=f"{stem}_min"),
            helper.make_node(
                "QLinearConv",
                [f"{stem}_neg", y_scale, y_zero, f"{stem}_w", f"{stem}_w_scale", f"{stem}_w_zero", out_scale, out_zero],
                [f"{stem}_scaled"], name=f"{stem}_slope", group=slopes.size, kernel_shape=[1, 1],
            ),
            helper.make_node(
                "QLinearAdd", [f"{stem}_pos", y_scale, y_zero, f"{stem}_scaled", out_scale, out_zero, out_scale, out_zero],
                [quantize.output[0]], name=f"{stem}_add", domain="com.microsoft",
            ),
        ]
        removed.update((id(prelu), id(quantize)))
    nodes = []
    for node in graph.node:
        if id(node) in rewritten:
            nodes += rewritten[id(node)]
        elif id(node) not in removed:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    if rewritten and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return _without_unread_weights(model)


def _without_unread_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    read = {name for node in model.graph.node for name in node.input}
    kept = [t for t in model.graph.initializer if t.name in read]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return model
