"""int8 compute graphs of the embedders, made from their fp32 graphs at install time.

SFace and fr_feature are over two thirds of an identify's CPU time, nearly all of it in
convolutions. ONNX Runtime runs a static QDQ graph's convolutions as QLinearConv (VNNI on AMD
EPYC), over twice as fast as fp32 (bench/int8.py; README, "Performance"). Static quantisation
needs each activation's range, and rounding every layer's weights and inputs shifts the mean of
its outputs a little, which the next layers carry on. An activation has one uint8 step for all
its channels, so a channel that spans a tenth of the tensor's range keeps a tenth of the steps;
between a convolution and the next each channel is rescaled to span the range (the same function:
``equalise_channels``). Scales, ranges and shifts were measured once on aligned faces of LFW View
1's training photos (none of View 2's, on which accuracy is judged; bench/int8_calibration.py)
and are kept beside this module (``Int8Calibration.stored``): the ranges as ``int8/<model>.json``
(ONNX Runtime's own calibration-cache format), each convolution's per-channel shift as
``int8/<model>.bias.json``, subtracted from its bias before quantising, and the channels' scales
as ``int8/<model>.scales.json``. So ``facesvc models`` makes the same graph from the same registry
file on any machine, without photos. Dynamic quantisation (no ranges needed) was measured too:
its ConvInteger is slower than fp32 on these cores.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import onnx
from onnx import helper, numpy_helper, version_converter

RANGES_DIR = Path(__file__).with_name("int8")
# QDQ's per-channel DequantizeLinear (its ``axis``) needs opset 13; fr_feature ships opset 9.
MIN_OPSET = 13
# How quantize_model edits a graph. Part of the recipe's digest (recipe_digest), so a cache
# built by an earlier recipe is rebuilt by ``facesvc models`` rather than kept.
RECIPE = (
    "batchnorm folded into conv; channels equalised across conv-prelu-conv at the stored scales; "
    "conv biases less the stored shifts; "
    "prelu on uint8: max and min by clip, depthwise 1x1 qlinearconv by a, qlinearadd"
)


class CalibrationPaths(NamedTuple):
    ranges: Path  # ONNX Runtime's calibration cache: each activation's (lowest, highest)
    shifts: Path  # convolution output -> per-channel mean shift of its int8 output
    scales: Path  # PRelu output -> per-channel scale its chain is equalised by


def calibration_paths(name: str, directory: Path = RANGES_DIR) -> CalibrationPaths:
    """Where model ``name``'s int8 calibration is kept (workers/int8/ for the service's)."""
    return CalibrationPaths(directory / f"{name}.json", directory / f"{name}.bias.json", directory / f"{name}.scales.json")


def read_channels(path: Path) -> dict[str, np.ndarray]:
    """A per-channel file (tensor -> one value per channel), as ``write_channels`` wrote it."""
    return {tensor: np.asarray(values, np.float64) for tensor, values in json.loads(path.read_text()).items()}


def write_channels(path: Path, channels: dict[str, np.ndarray]) -> None:
    path.write_text(json.dumps({tensor: [round(float(v), 9) for v in values] for tensor, values in channels.items()}))


@dataclass(frozen=True)
class Int8Calibration:
    """What an int8 graph is built at besides its fp32 source: the ranges file, and the shifts
    and scales by tensor (none: the plain quantisation)."""

    ranges: Path
    shifts: dict[str, np.ndarray] = field(default_factory=dict)
    scales: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def stored(cls, name: str, directory: Path = RANGES_DIR) -> Int8Calibration:
        paths = calibration_paths(name, directory)
        return cls(paths.ranges, read_channels(paths.shifts), read_channels(paths.scales))


def prepared(model: onnx.ModelProto) -> onnx.ModelProto:
    """The fp32 graph as it is calibrated and quantised: opset raised to MIN_OPSET. Tensor names
    are left alone, since the stored ranges are keyed by them."""
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return version_converter.convert_version(model, MIN_OPSET) if opset < MIN_OPSET else model


def recipe_digest(name: str) -> str:
    """Digest of what makes model ``name``'s int8 graph besides its fp32 source: the stored
    calibration and RECIPE."""
    stored = b"".join(path.read_bytes() for path in calibration_paths(name))
    return hashlib.sha256(stored + RECIPE.encode()).hexdigest()


def equalised_fp32(src: Path, scales: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The fp32 graph ``src`` as its int8 graph is made from: BatchNormalization folded into the
    convolutions (``fold_batchnorm``) and channels equalised at ``scales`` (``equalise_channels``)."""
    return equalise_channels(fold_batchnorm(prepared(onnx.load(str(src)))), scales)


def quantize_model(src: Path, dst: Path, calibration: Int8Calibration) -> None:
    """Write the static int8 QDQ graph of the fp32 graph ``src`` at ``calibration``: from
    ``equalised_fp32`` with the bias shifts subtracted (``shift_biases``), PRelu run on uint8
    after (``integer_prelu``). Deterministic: the same inputs give the same bytes."""
    quantize_static_qdq(shift_biases(equalised_fp32(src, calibration.scales), calibration.shifts), dst, calibration.ranges)
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


class Chain(NamedTuple):
    """A PRelu between two convolutions, the only reader of the first's output and of its own."""

    producer: onnx.NodeProto
    prelu: onnx.NodeProto
    consumer: onnx.NodeProto


def equalisable(model: onnx.ModelProto) -> list[Chain]:
    """Every Conv -> PRelu -> Conv chain of the graph whose channels ``equalise_channels`` can
    rescale: both convolutions' weights are initializers."""
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    writers = {out: node for node in graph.node for out in node.output}
    chains = []
    for prelu in (n for n in graph.node if n.op_type == "PRelu"):
        producer, after = writers.get(prelu.input[0]), readers.get(prelu.output[0], [])
        if (
            producer is not None and producer.op_type == "Conv" and producer.input[1] in weights
            and len(readers[prelu.input[0]]) == 1 and not {prelu.input[0], prelu.output[0]} & outputs
            and len(after) == 1 and after[0].op_type == "Conv" and after[0].input[0] == prelu.output[0]
            and after[0].input[1] in weights
        ):
            chains.append(Chain(producer, prelu, after[0]))
    return chains


def equalise_channels(model: onnx.ModelProto, scales: dict[str, np.ndarray]) -> onnx.ModelProto:
    """Each chain of ``equalisable`` whose PRelu output is named in ``scales``: channel c of the
    first convolution's output divided by scales[c] (its weights and bias), so of the PRelu's
    too (PRelu(x / s) = PRelu(x) / s for s > 0), and the second convolution's weights on channel
    c multiplied by it: the same function. Chosen so that every channel spans its tensor's range
    (bench/int8_calibration.py), a uint8 activation then resolves each channel as finely as its
    widest: fr_feature's int8 embeddings agreed with fp32's to 0.990 before, 0.995 after (SFace
    0.995, 0.997). Per-channel int8 weights take the rescaled kernels at no loss where the second
    convolution is depthwise, and nearly none elsewhere."""
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    kernels: dict[str, np.ndarray] = {}  # conv output -> its kernel so far (a conv can be in two chains)
    biases: dict[str, np.ndarray] = {}

    def kernel(conv: onnx.NodeProto) -> np.ndarray:
        return kernels.setdefault(conv.output[0], numpy_helper.to_array(weights[conv.input[1]]).astype(np.float64))

    for producer, prelu, consumer in equalisable(model):
        scale = scales.get(prelu.output[0])
        if scale is None:
            continue
        kernels[producer.output[0]] = kernel(producer) / scale.reshape(-1, 1, 1, 1)
        if len(producer.input) > 2:
            bias = biases.get(producer.output[0], numpy_helper.to_array(weights[producer.input[2]]).astype(np.float64))
            biases[producer.output[0]] = bias / scale
        k = kernel(consumer)
        groups = next((a.i for a in consumer.attribute if a.name == "group"), 1)
        per_group_out, per_group_in = k.shape[0] // groups, k.shape[1]
        channel = (np.arange(k.shape[0]) // per_group_out)[:, None] * per_group_in + np.arange(per_group_in)[None, :]
        kernels[consumer.output[0]] = k * scale[channel][:, :, None, None]
    for conv in (n for n in graph.node if n.op_type == "Conv" and n.output[0] in kernels):
        graph.initializer.append(numpy_helper.from_array(kernels[conv.output[0]].astype(np.float32), f"{conv.output[0]}_eq_w"))
        conv.input[1] = f"{conv.output[0]}_eq_w"
        if conv.output[0] in biases:
            graph.initializer.append(numpy_helper.from_array(biases[conv.output[0]].astype(np.float32), f"{conv.output[0]}_eq_b"))
            conv.input[2] = f"{conv.output[0]}_eq_b"
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
