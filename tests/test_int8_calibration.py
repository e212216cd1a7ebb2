"""The int8 calibration facesvc stores (bench/int8_calibration.py): channel scales that equalise
the channels between convolutions, least-error activation ranges and the bias shifts that take
back each quantised convolution's mean error."""
from __future__ import annotations

import copy
import json

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from bench.int8_calibration import MIN_SCALE, Feeds, bias_shifts, equalising_scales, least_error_ranges, session_with_outputs
from workers.quantize import Int8Calibration, equalisable, equalise_channels, quantize_model, quantize_static_qdq


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

    shifts = bias_shifts(src, Int8Calibration(ranges), feeds, tmp_path / "scratch.onnx")

    def mean_error(path) -> np.ndarray:
        run = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run
        return np.mean([run(None, {"x": f})[0] - ort_fp32(None, {"x": f})[0] for f in feeds], axis=(0, 1, 3, 4))

    ort_fp32 = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run
    quantize_model(src, tmp_path / "plain.onnx", Int8Calibration(ranges))
    quantize_model(src, tmp_path / "shifted.onnx", Int8Calibration(ranges, shifts))
    before, after = np.abs(mean_error(tmp_path / "plain.onnx")), np.abs(mean_error(tmp_path / "shifted.onnx"))
    assert set(shifts) == {"y"} and (shifts["y"] < -0.03).all()
    assert before.min() > 0.03 and after.max() < before.min() / 5


def _chained(rng: np.random.Generator, channel_reach: np.ndarray) -> onnx.ModelProto:
    """x -> Conv 3x3 (3 -> 4 channels, output channel c scaled by channel_reach[c]) -> PRelu
    (slopes of both signs) -> depthwise Conv 3x3 -> PRelu -> Conv 1x1 (4 -> 2): two chains, the
    depthwise convolution in both."""
    weights = [
        numpy_helper.from_array((rng.standard_normal((4, 3, 3, 3)) * channel_reach.reshape(4, 1, 1, 1)).astype(np.float32), "w1"),
        numpy_helper.from_array((rng.standard_normal(4) * channel_reach).astype(np.float32), "b1"),
        numpy_helper.from_array(np.array([0.25, -0.5, 0.1, 0.0], np.float32).reshape(4, 1, 1), "a1"),
        numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b2"),
        numpy_helper.from_array(np.array([0.3, 0.2, -0.4, 0.6], np.float32).reshape(4, 1, 1), "a2"),
        numpy_helper.from_array(rng.standard_normal((2, 4, 1, 1)).astype(np.float32), "w3"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("PRelu", ["c1", "a1"], ["p1"], name="prelu1"),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], group=4),
        helper.make_node("PRelu", ["c2", "a2"], ["p2"], name="prelu2"),
        helper.make_node("Conv", ["p2", "w3"], ["out"], name="conv3"),
    ]
    return _model(nodes, ["out"], weights, [1, 3, 8, 8])


def _run(model: onnx.ModelProto, outputs: list[str], feed: np.ndarray) -> list[np.ndarray]:
    return session_with_outputs(model, outputs).run(feed)


def test_equalise_channels_rescales_each_channel_between_two_convolutions_and_keeps_the_function():
    rng = np.random.default_rng(2)
    model = _chained(rng, np.ones(4))
    assert [chain.prelu.output[0] for chain in equalisable(model)] == ["p1", "p2"]
    scales = {"p1": np.array([0.5, 2.0, 0.1, 1.0]), "p2": np.array([3.0, 0.25, 1.0, 0.05])}
    feed = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)

    before = _run(model, ["c1", "p1", "c2", "p2", "out"], feed)
    after = _run(equalise_channels(copy.deepcopy(model), scales), ["c1", "p1", "c2", "p2", "out"], feed)

    np.testing.assert_allclose(after[-1], before[-1], rtol=1e-4, atol=1e-5)  # the same function
    for i, tensor in enumerate(["c1", "p1", "c2", "p2"]):  # each channel divided by its scale
        np.testing.assert_allclose(after[i], before[i] / scales[tensor.replace("c", "p")].reshape(1, 4, 1, 1), rtol=1e-4, atol=1e-5)


def test_equalising_scales_bring_every_channel_to_its_tensors_reach():
    rng = np.random.default_rng(3)
    # Channel 0 reaches 10 times as far as channel 1; channel 3's weights and bias are zero.
    model = _chained(rng, np.array([1.0, 0.1, 0.5, 0.0]))
    feeds = [rng.standard_normal((1, 3, 8, 8)).astype(np.float32) for _ in range(20)]

    scales = equalising_scales(model, feeds)

    assert scales["p1"][3] == MIN_SCALE and scales["p1"][0] == 1.0
    assert 0.05 < scales["p1"][1] < 0.2
    equalised = _run(equalise_channels(copy.deepcopy(model), scales), ["c1", "p1"], feeds[0])
    reach = [np.abs(t[0, :3]).max(axis=(1, 2)) for t in equalised]  # the live channels
    assert all(r.min() > 0.5 * r.max() for r in reach)  # within a factor 2 of each other, from 10
