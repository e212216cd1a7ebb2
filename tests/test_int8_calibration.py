"""The int8 calibration facesvc stores (bench/int8_calibration.py): least-error activation ranges
and the bias shifts that take back each quantised convolution's mean error."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from bench.int8_calibration import Feeds, bias_shifts, least_error_ranges
from workers.quantize import quantize_model, quantize_static_qdq


def _model(nodes: list[onnx.NodeProto], outputs: list[str], weights: list[onnx.TensorProto], shape: list[int]) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs], initializer=weights,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_least_error_ranges_clip_a_rare_outlier_and_keep_an_even_spread_whole():
    rng = np.random.default_rng(0)
    model = _model([helper.make_node("Relu", ["x"], ["y"])], ["y"], [], [1, 10_000])
    feeds = [rng.uniform(-1, 1, (1, 10_000)).astype(np.float32) for _ in range(100)]
    feeds[3][0, 7] = 5.0  # one value in a million

    ranges = least_error_ranges(model, ["x", "y"], feeds)

    low, high = ranges["x"]
    assert 0.99 < high < 2.0 and low < -0.99  # the outlier is clipped, the bulk is not
    assert ranges["y"][0] == 0.0 and ranges["y"][1] < 5.0
    # without the outlier nothing is clipped: the extremes are the range
    feeds[3][0, 7] = 0.0
    low, high = least_error_ranges(model, ["x"], feeds)["x"]
    assert high == max(float(f.max()) for f in feeds) and low == min(float(f.min()) for f in feeds)


def test_bias_shifts_take_back_the_mean_error_of_rounded_weights(tmp_path):
    rng = np.random.default_rng(1)
    # Each channel's largest weight is 1 (its int8 step 1/127); every other lies 0.4 of a step
    # above a step, so rounding lowers them all and, on positive inputs, the output's mean.
    kernel = (rng.integers(1, 100, (4, 3, 3, 3)) + 0.4) / 127
    kernel[:, 0, 0, 0] = 1.0
    weights = [
        numpy_helper.from_array(kernel.astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b"),
        numpy_helper.from_array(np.eye(4, dtype=np.float32).reshape(4, 4, 1, 1), "identity"),
    ]
    # The graph's output is the second convolution's (an identity): the first writes a tensor
    # inside the graph, where the quantiser keeps its name.
    convs = [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1]), helper.make_node("Conv", ["y", "identity"], ["out"])]
    model = _model(convs, ["out"], weights, [1, 3, 8, 8])
    src = tmp_path / "conv.onnx"
    onnx.save(model, str(src))
    feeds = [np.abs(rng.standard_normal((1, 3, 8, 8))).astype(np.float32) for _ in range(40)]
    ranges = tmp_path / "ranges.json"
    quantize_static_qdq(onnx.load(str(src)), tmp_path / "minmax.onnx", ranges, Feeds("x", feeds))
    cache = json.loads(ranges.read_text())
    for tensor in cache["data"].values():  # room for every value: no clipping to shift the means
        tensor["lowest"]["data"], tensor["highest"]["data"] = [0.0], [tensor["highest"]["data"][0] * 1.5]
    ranges.write_text(json.dumps(cache))

    shifts = bias_shifts(src, ranges, feeds, tmp_path / "scratch.onnx")

    def mean_error(path) -> np.ndarray:
        run = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run
        return np.mean([run(None, {"x": f})[0] - ort_fp32(None, {"x": f})[0] for f in feeds], axis=(0, 1, 3, 4))

    ort_fp32 = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run
    quantize_model(src, tmp_path / "plain.onnx", ranges, {})
    quantize_model(src, tmp_path / "shifted.onnx", ranges, shifts)
    before, after = np.abs(mean_error(tmp_path / "plain.onnx")), np.abs(mean_error(tmp_path / "shifted.onnx"))
    assert set(shifts) == {"y"} and (shifts["y"] < -0.03).all()
    assert before.min() > 0.03 and after.max() < before.min() / 5
