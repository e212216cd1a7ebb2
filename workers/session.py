"""Model sessions behind one tiny interface: ``run(feed) -> outputs``.

Two backends: ONNX Runtime (CUDA provider when present) and OpenCV DNN, which runs some small
CNNs several times faster on CPU (DESIGN.md §6). Both are built once per process.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

log = logging.getLogger(__name__)

Backend = Literal["ort", "opencv"]


class ModelSession(Protocol):
    input_name: str
    output_names: list[str]

    def run(self, feed: np.ndarray) -> list[np.ndarray]:
        """Run the model on one NCHW float32 batch; outputs in ``output_names`` order."""


class OrtSession:
    """ONNX Runtime session with its providers and thread counts set explicitly."""

    def __init__(self, model: Path | bytes, threads: int, device: str) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # Requests run in parallel threads; a model's own inter-op pool would only contend.
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, options, providers=ort_providers(device))
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feed: np.ndarray) -> list[np.ndarray]:
        return self.session.run(self.output_names, {self.input_name: feed})


class OpenCvSession:
    """OpenCV DNN net. Not thread-safe, so each thread gets its own copy of the net."""

    def __init__(self, model: Path | bytes, output_names: list[str], input_name: str) -> None:
        import threading

        self.model = model
        self.input_name = input_name
        self.output_names = output_names
        self._local = threading.local()

    def _net(self):
        net = getattr(self._local, "net", None)
        if net is None:
            import cv2

            if isinstance(self.model, bytes):
                net = cv2.dnn.readNetFromONNX(np.frombuffer(self.model, np.uint8))
            else:
                net = cv2.dnn.readNetFromONNX(str(self.model))
            net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
            net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
            self._local.net = net
        return net

    def run(self, feed: np.ndarray) -> list[np.ndarray]:
        net = self._net()
        net.setInput(feed, self.input_name)
        return list(net.forward(self.output_names))


def ort_providers(device: str) -> list[str]:
    """CUDA first when asked for or available, CPU always as the fallback."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device != "cpu" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        log.warning("CUDA requested but onnxruntime has no CUDA provider; using the CPU")
    return ["CPUExecutionProvider"]


def open_session(model: Path | bytes, backend: Backend, threads: int, device: str) -> ModelSession:
    """Build a session from a file or, for ONNX Runtime, a serialised graph; OpenCV DNN is a
    CPU backend, so a GPU always gets ONNX Runtime."""
    ort_session = OrtSession(model, threads, device)
    uses_gpu = ort_session.session.get_providers()[0] != "CPUExecutionProvider"
    if backend == "ort" or uses_gpu:
        return ort_session
    import cv2

    # OpenCV's pool (DNN, resize, decode) is process-wide and defaults to every core; requests
    # already run in parallel, so it gets the same threads as ONNX Runtime's intra-op pool.
    # Measured on 2 busy cores: a serial detect + embed took 115 ms with 2 threads, 52 with 1.
    cv2.setNumThreads(threads)
    return OpenCvSession(model, ort_session.output_names, ort_session.input_name)
