"""Convert candidate embedders found in registry packages to ONNX (issue 17, item 2; research).

Runs in its own virtual environment with TensorFlow and tf2onnx, never the service's:

    python3 -m venv var/candidates/tfenv
    var/candidates/tfenv/bin/pip install tensorflow-cpu tf2onnx tf-keras
    var/candidates/tfenv/bin/python bench/candidate_convert.py tfjs MODEL.json OUT.onnx
    var/candidates/tfenv/bin/python bench/candidate_convert.py tflite MODEL.tflite OUT.onnx
    var/candidates/tfenv/bin/python bench/candidate_convert.py keras MODEL.h5 OUT.onnx

``tfjs`` reads a TensorFlow.js graph model (model.json + weight shards, float16/uint8
quantised weights dequantised) into a GraphDef with no TensorFlow.js code: the topology *is* a
GraphDef in JSON, each Const gets its weights from the manifest, and the fused ops TF.js's
converter wrote (_FusedConv2D, FusedDepthwiseConv2dNative, _FusedMatMul) are split back into
Conv2D/DepthwiseConv2dNative/MatMul + BiasAdd + activation so tf2onnx can take them. The
converted graph is checked against TensorFlow running the same GraphDef on random input.
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

import numpy as np

OPSET = 13


def read_tfjs_weights(model_json: Path, manifest: list[dict]) -> dict[str, np.ndarray]:
    weights = {}
    for group in manifest:
        data = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            shape = [int(s) for s in w["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = w.get("quantization")
            dtype = np.dtype(quant["dtype"] if quant else w["dtype"])
            raw = np.frombuffer(data, dtype, count, offset)
            offset += count * dtype.itemsize
            if quant and quant["dtype"] == "float16":
                value = raw.astype(np.float32)
            elif quant:  # uint8 / uint16 affine quantisation
                value = raw.astype(np.float32) * quant["scale"] + quant["min"]
            else:
                value = raw.copy()
            weights[w["name"]] = value.astype(w["dtype"] if w["dtype"] != "float32" else np.float32).reshape(shape)
    return weights


def tfjs_graph_def(model_json: Path):
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorflow.core.framework import graph_pb2, node_def_pb2

    model = json.loads(model_json.read_text())
    weights = read_tfjs_weights(model_json, model["weightsManifest"])
    topology = dict(model["modelTopology"])
    topology.pop("library", None)
    graph = json_format.ParseDict(topology, graph_pb2.GraphDef(), ignore_unknown_fields=True)
    out = graph_pb2.GraphDef()
    out.versions.CopyFrom(graph.versions)
    for node in graph.node:
        if node.op == "Const" and node.name in weights:
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(weights[node.name]))
            node.attr["dtype"].type = node.attr["value"].tensor.dtype
        if node.op in ("_FusedConv2D", "FusedDepthwiseConv2dNative", "_FusedMatMul"):
            out.node.extend(unfuse(node, node_def_pb2))
        else:
            out.node.append(node)
    return out, model


def unfuse(node, node_def_pb2) -> list:
    """A fused conv/matmul as the base op, BiasAdd and the activation, the last keeping the name."""
    fused = [base64.b64decode(s).decode() if isinstance(s, str) else s.decode() for s in node.attr["fused_ops"].list.s]
    base_op = {"_FusedConv2D": "Conv2D", "FusedDepthwiseConv2dNative": "DepthwiseConv2dNative", "_FusedMatMul": "MatMul"}[node.op]
    keep = {
        "Conv2D": ("T", "strides", "padding", "explicit_paddings", "data_format", "dilations", "use_cudnn_on_gpu"),
        "DepthwiseConv2dNative": ("T", "strides", "padding", "explicit_paddings", "data_format", "dilations"),
        "MatMul": ("T", "transpose_a", "transpose_b"),
    }[base_op]
    inputs = list(node.input)
    nodes = []
    base = node_def_pb2.NodeDef(name=node.name + "/base" if fused else node.name, op=base_op, input=inputs[:2])
    for key in keep:
        if key in node.attr:
            base.attr[key].CopyFrom(node.attr[key])
    nodes.append(base)
    extra = inputs[2:]
    last = base.name
    for i, op in enumerate(fused):
        name = node.name if i == len(fused) - 1 else f"{node.name}/{op.lower()}"
        n = node_def_pb2.NodeDef(name=name, op=op)
        n.attr["T"].CopyFrom(node.attr["T"])
        if op == "BiasAdd":
            n.input.extend([last, extra.pop(0)])
            if "data_format" in node.attr:
                n.attr["data_format"].CopyFrom(node.attr["data_format"])
        elif op in ("Relu", "Relu6", "Elu", "Sigmoid", "Tanh"):
            n.input.append(last)
        elif op == "LeakyRelu":
            n.input.append(last)
            n.attr["alpha"].f = node.attr["leakyrelu_alpha"].f
        else:
            raise NotImplementedError(op)
        nodes.append(n)
        last = name
    return nodes


def convert_tfjs(src: Path, dst: Path) -> None:
    import tensorflow as tf
    import tf2onnx

    graph_def, model = tfjs_graph_def(src)
    placeholders = [n for n in graph_def.node if n.op == "Placeholder"]
    signature = model.get("signature") or model.get("userDefinedMetadata", {}).get("signature", {})
    outputs = [o["name"] for o in signature.get("outputs", {}).values()]
    outputs = [o if ":" in o else o + ":0" for o in outputs]
    inputs = [p.name + ":0" for p in placeholders]
    shape = [d.size for d in placeholders[0].attr["shape"].shape.dim]
    print("inputs", inputs, shape, "outputs", outputs)
    onnx_model, _ = tf2onnx.convert.from_graph_def(graph_def, input_names=inputs, output_names=outputs, opset=OPSET)
    dst.write_bytes(onnx_model.SerializeToString())
    # Check: TensorFlow on the same GraphDef against ONNX Runtime.
    x = np.random.default_rng(0).uniform(0, 1, [2] + [s if s > 0 else 1 for s in shape[1:]]).astype(np.float32)
    with tf.Graph().as_default() as g:
        tf.graph_util.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=g) as sess:
            expected = sess.run(outputs, {inputs[0]: x})
    check(dst, x, expected, outputs)


def check(dst: Path, x: np.ndarray, expected: list[np.ndarray], names: list[str]) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})
    order = [o.name for o in session.get_outputs()]
    for name, e in zip(names, expected):
        g = got[order.index(name)] if name in order else got[0]
        print(f"{name}: shape {g.shape}, max |onnx - tf| {np.abs(g - e).max():.2e} (|tf| max {np.abs(e).max():.2e})")


def convert_tflite(src: Path, dst: Path) -> None:
    import tensorflow as tf
    import tf2onnx

    tf2onnx.convert.from_tflite(str(src), opset=OPSET, output_path=str(dst))
    interpreter = tf.lite.Interpreter(model_path=str(src))
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    x = np.random.default_rng(0).uniform(-1, 1, detail["shape"]).astype(np.float32)
    interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    outs = interpreter.get_output_details()
    print("tflite input", detail["name"], detail["shape"], "outputs", [(o["name"], o["shape"]) for o in outs])
    check(dst, x, [interpreter.get_tensor(o["index"]) for o in outs], [o["name"] for o in outs])


def convert_keras(src: Path, dst: Path) -> None:
    import tensorflow as tf
    import tf2onnx
    import tf_keras

    model = tf_keras.models.load_model(str(src), compile=False)
    shape = model.inputs[0].shape
    print("keras input", shape, "output", model.outputs[0].shape)
    spec = (tf.TensorSpec([None] + list(shape[1:]), tf.float32, name="input"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET, output_path=str(dst))
    x = np.random.default_rng(0).normal(0, 1, [2] + list(shape[1:])).astype(np.float32)
    check(dst, x, [model.predict(x, verbose=0)], ["output"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("tfjs", "tflite", "keras"))
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    args = parser.parse_args()
    {"tfjs": convert_tfjs, "tflite": convert_tflite, "keras": convert_keras}[args.kind](args.src, args.dst)
    print("written", args.dst, args.dst.stat().st_size, "bytes")


if __name__ == "__main__":
    sys.exit(main())
