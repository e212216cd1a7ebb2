"""int8 compute graphs of the embedders, made from their fp32 graphs at install time.

SFace and fr_feature are over two thirds of an identify's CPU time, nearly all of it in
convolutions. ONNX Runtime runs a static QDQ graph's convolutions as QLinearConv (VNNI on AMD
EPYC), over twice as fast as fp32 (bench/int8.py; README, "Performance"). Static quantisation
needs each activation's range. Those were measured once by bench/int8.py on aligned faces of LFW
View 1's training photos (none of View 2's, on which accuracy is judged) and are kept beside
this module (``int8/<model>.json``, ONNX Runtime's own calibration-cache format), so
``facesvc models`` makes the same graph from the same registry file on any machine, without
photos. Dynamic quantisation (no ranges needed) was measured too: its ConvInteger is slower than
fp32 on these cores.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import onnx
from onnx import helper, version_converter

RANGES_DIR = Path(__file__).with_name("int8")
# QDQ's per-channel DequantizeLinear (its ``axis``) needs opset 13; fr_feature ships opset 9.
MIN_OPSET = 13


def ranges_path(name: str) -> Path:
    """The activation ranges the int8 graph of model ``name`` is quantised with."""
    return RANGES_DIR / f"{name}.json"


def prepared(model: onnx.ModelProto) -> onnx.ModelProto:
    """The fp32 graph as it is calibrated and quantised: opset raised to MIN_OPSET. Tensor names
    are left alone, since the stored ranges are keyed by them."""
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return version_converter.convert_version(model, MIN_OPSET) if opset < MIN_OPSET else model


def quantize_model(src: Path, dst: Path, ranges: Path) -> None:
    """Write the static int8 QDQ graph of the fp32 graph ``src`` at the stored ``ranges``, PRelu
    expanded (``expand_prelu``). Deterministic: the same inputs give the same bytes."""
    quantize_static_qdq(prepared(onnx.load(str(src))), dst, ranges)
    model = expand_prelu(onnx.load(str(dst)))
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


def expand_prelu(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every PRelu(x, a) replaced by Relu(x) + a * (x - Relu(x)), the same function.

    ONNX Runtime has no int8 PRelu, and its fp32 PRelu broadcasts the per-channel slope element
    by element: in SFace it took longer than all the convolutions. The four plain elementwise
    ops are vectorised; in the QDQ graph they sit between a DequantizeLinear and a
    QuantizeLinear, so the convolutions around them still fuse into QLinearConv."""
    nodes = []
    for node in model.graph.node:
        if node.op_type != "PRelu":
            nodes.append(node)
            continue
        x, slope = node.input
        stem = f"{node.output[0]}_prelu"
        nodes += [
            helper.make_node("Relu", [x], [f"{stem}_pos"], name=f"{stem}_relu"),
            helper.make_node("Sub", [x, f"{stem}_pos"], [f"{stem}_neg"], name=f"{stem}_sub"),
            helper.make_node("Mul", [f"{stem}_neg", slope], [f"{stem}_scaled"], name=f"{stem}_mul"),
            helper.make_node("Add", [f"{stem}_pos", f"{stem}_scaled"], [node.output[0]], name=f"{stem}_add"),
        ]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model
