"""The int8 calibration facesvc stores (workers/int8/): channel scales, activation ranges and
bias shifts.

``facesvc models`` builds each embedder's int8 graph from three measurements made here once, in
this order, on the feeds the pipeline gives the model for calibration photos (bench/int8.py
records them):

- **Channel scales.** An activation is quantised per tensor, so a channel whose values span a
  tenth of the tensor's range gets a tenth of its 256 steps; in fr_feature the last block's
  512 channels before the global depthwise convolution were two fifths of the int8 graph's
  error. Between two convolutions (a PRelu between them) each channel is scaled so that its
  extremes over the calibration feeds reach the tensor's (``equalising_scales``; never more
  than 128-fold), and the next convolution takes the scale back (``quantize.equalise_channels``).

- **Ranges.** Each activation tensor's range is the one whose uint8 steps lose least: the
  clipping limits, searched on a grid of fractions of the tensor's extremes, that minimise the
  mean squared quantisation error over a histogram of all its values. ONNX Runtime's MinMax
  (the mean of each photo's extremes, what facesvc stored before) clipped 1.7 % of fr_feature's
  input pixels and 0.3 % of its embedding's components; these ranges clip only where it pays.
- **Bias shifts.** Rounding a convolution's weights and input moves the mean of its outputs, per
  channel; the next layers carry the shift on. Each convolution's own shift is its int8 output's
  mean less that of the same convolution in fp32 on the same dequantised input (a float twin
  beside it in the graph), over the calibration feeds; ``quantize.shift_biases`` subtracts it
  from the bias. Measured again on the corrected graph and added (``SHIFT_PASSES``), since each
  correction changes what the later layers see.

The ranges and shifts are measured on the equalised graph. Selected by agreement with fp32 on LFW
photos that View 2 does not use, never on View 2 (README, *int8 inference*).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from workers.quantize import (
    CalibrationPaths, Int8Calibration, equalisable, equalise_channels, equalised_fp32, fold_batchnorm, prepared,
    quantize_model, quantize_static_qdq, write_channels,
)
from workers.session import OrtSession

BINS = 4096
# Clipping limits tried: these fractions of a tensor's lowest and highest value, every pair.
FRACTIONS = np.linspace(0.3, 1.0, 36)
SHIFT_PASSES = 2
# A channel is magnified at most 128-fold: one that is (nearly) always zero would otherwise be
# blown up without bound.
MIN_SCALE = 1 / 128


class Feeds:
    """ONNX Runtime's calibration reader over recorded feeds."""

    def __init__(self, input_name: str, feeds: list[np.ndarray]) -> None:
        self.items = iter([{input_name: f} for f in feeds])

    def get_next(self) -> dict | None:
        return next(self.items, None)


def calibrate(src: Path, feeds: list[np.ndarray], paths: CalibrationPaths, work: Path) -> None:
    """Measure the fp32 graph ``src``'s channel scales, ranges and bias shifts on ``feeds`` and
    write them to ``paths``."""
    folded = fold_batchnorm(prepared(onnx.load(str(src))))
    scales = equalising_scales(folded, feeds)
    model = equalise_channels(folded, scales)
    # ONNX Runtime names the tensors it quantises and writes the cache's format; a few feeds do.
    # It moves a model's weights out to files as it goes, so it gets a copy.
    quantize_static_qdq(copy.deepcopy(model), work / "minmax.onnx", paths.ranges, Feeds(model.graph.input[0].name, feeds[:4]))
    cache = json.loads(paths.ranges.read_text())
    for tensor, (low, high) in least_error_ranges(model, list(cache["data"]), feeds).items():
        cache["data"][tensor]["lowest"]["data"] = [low]
        cache["data"][tensor]["highest"]["data"] = [high]
    paths.ranges.write_text(json.dumps(cache))
    write_channels(paths.scales, scales)
    write_channels(paths.shifts, bias_shifts(src, Int8Calibration(paths.ranges, scales=scales), feeds, work / "shifted.onnx"))


def equalising_scales(model: onnx.ModelProto, feeds: list[np.ndarray]) -> dict[str, np.ndarray]:
    """For each chain of ``quantize.equalisable``, keyed by its PRelu's output: the per-channel
    scale that takes each channel's extremes over the feeds, before and after the PRelu, to
    within the tensor's and one of them to it."""
    chains = equalisable(model)
    tensors = [name for chain in chains for name in (chain.prelu.input[0], chain.prelu.output[0])]
    session = session_with_outputs(model, tensors)
    low = {t: np.inf for t in tensors}
    high = {t: -np.inf for t in tensors}
    for feed in feeds:
        for tensor, value in zip(tensors, session.run(feed)):
            low[tensor] = np.minimum(low[tensor], value.min(axis=(0, 2, 3)))
            high[tensor] = np.maximum(high[tensor], value.max(axis=(0, 2, 3)))
    scales = {}
    for chain in chains:
        # Each channel's share of the tensor's reach on either side of zero, before and after.
        shares = [
            share for t in (chain.prelu.input[0], chain.prelu.output[0])
            for share in (np.maximum(high[t], 0) / max(high[t].max(), 1e-12), np.minimum(low[t], 0) / min(low[t].min(), -1e-12))
        ]
        scales[chain.prelu.output[0]] = np.clip(np.max(shares, axis=0), MIN_SCALE, 1.0)
    return scales


def least_error_ranges(model: onnx.ModelProto, tensors: list[str], feeds: list[np.ndarray]) -> dict[str, tuple[float, float]]:
    """(low, high) of each tensor, minimising its uint8 quantisation error over the feeds."""
    session = session_with_outputs(model, tensors)
    # Two passes over the feeds: a histogram needs the extremes first, and keeping every
    # activation of 1,000 faces instead would take ~20 GB.
    extremes = {t: [np.inf, -np.inf] for t in tensors}
    for feed in feeds:
        for tensor, value in zip(tensors, session.run(feed)):
            extremes[tensor] = [min(extremes[tensor][0], float(value.min())), max(extremes[tensor][1], float(value.max()))]
    counts = {t: np.zeros(BINS) for t in tensors}
    for feed in feeds:
        for tensor, value in zip(tensors, session.run(feed)):
            counts[tensor] += np.histogram(value, BINS, tuple(extremes[tensor]))[0]
    return {t: _least_error_range(*extremes[t], counts[t]) for t in tensors}


def _least_error_range(low: float, high: float, counts: np.ndarray) -> tuple[float, float]:
    edges = np.linspace(low, high, len(counts) + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    best = (np.inf, low, high)
    for a in FRACTIONS:
        for b in FRACTIONS:
            error = _quantisation_error(centres, counts, low * a, high * b)
            if error < best[0]:
                best = (error, low * a, high * b)
    return float(best[1]), float(best[2])


def _quantisation_error(values: np.ndarray, counts: np.ndarray, low: float, high: float) -> float:
    """Mean squared error of uint8 quantisation at (low, high), as ONNX Runtime derives scale
    and zero point from them (the range always holds 0)."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / 255.0 or 1.0
    zero = np.round(-low / scale)
    steps = np.clip(np.round(values / scale) + zero, 0, 255)
    return float(np.sum(counts * (values - (steps - zero) * scale) ** 2) / counts.sum())


def bias_shifts(src: Path, calibration: Int8Calibration, feeds: list[np.ndarray], scratch: Path) -> dict[str, np.ndarray]:
    """Each int8 convolution's mean output shift per channel at ``calibration``'s ranges and
    scales, summed over SHIFT_PASSES builds (each written to ``scratch``)."""
    reference = equalised_fp32(src, calibration.scales)
    shifts: dict[str, np.ndarray] = {}
    for _ in range(SHIFT_PASSES):
        quantize_model(src, scratch, Int8Calibration(calibration.ranges, shifts, calibration.scales))
        for tensor, shift in own_shifts(onnx.load(str(scratch)), reference, feeds).items():
            shifts[tensor] = shifts.get(tensor, 0.0) + shift
    return shifts


def own_shifts(quantised: onnx.ModelProto, reference: onnx.ModelProto, feeds: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per channel, the mean of each quantised convolution's output less that of its fp32 twin
    (``reference``'s convolution writing the same tensor) on the same dequantised input."""
    model = copy.deepcopy(quantised)
    graph = model.graph
    writers = {out: node for node in graph.node for out in node.output}
    fp32_weights = {t.name: t for t in reference.graph.initializer}
    fp32_convs = {node.output[0]: node for node in reference.graph.node if node.op_type == "Conv"}
    pairs: list[tuple[str, str]] = []
    for conv in [n for n in graph.node if n.op_type == "Conv"]:
        twin = fp32_convs.get(conv.output[0])
        bias = writers.get(conv.input[2]) if len(conv.input) > 2 else None
        if twin is None or bias is None or bias.op_type != "DequantizeLinear":  # not a quantised convolution
            continue
        names = [f"{name}_fp32twin" for name in twin.input[1:]]
        for name, original in zip(names, twin.input[1:]):
            weight = copy.deepcopy(fp32_weights[original])
            weight.name = name
            graph.initializer.append(weight)
        node = helper.make_node("Conv", [conv.input[0], *names], [f"{conv.output[0]}_fp32twin"], name=f"{conv.name}_fp32twin")
        node.attribute.extend(twin.attribute)
        graph.node.append(node)
        pairs.append((conv.output[0], node.output[0]))
    session = session_with_outputs(model, [name for pair in pairs for name in pair])
    totals: list = [0.0] * len(pairs)
    for feed in feeds:
        outputs = session.run(feed)
        totals = [total + (q - f).mean(axis=(0, 2, 3)) for total, q, f in zip(totals, outputs[0::2], outputs[1::2])]
    return {conv: total / len(feeds) for (conv, _), total in zip(pairs, totals)}


def session_with_outputs(model: onnx.ModelProto, tensors: list[str]) -> OrtSession:
    """A session of ``model`` answering exactly ``tensors``, in that order."""
    model = copy.deepcopy(model)
    del model.graph.output[:]
    model.graph.output.extend(helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in tensors)
    return OrtSession(model.SerializeToString(), 2, ["CPUExecutionProvider"])

