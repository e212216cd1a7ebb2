"""Model sessions behind one tiny interface: ``run(feed) -> outputs``.

Two backends: ONNX Runtime (CUDA provider when present) and OpenCV DNN, which runs some small
CNNs several times faster on CPU (which runs each model: ``pipeline.BACKENDS``, measured by
bench/attributes.py). Both are built once per process.
"""
from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import onnx

log = logging.getLogger(__name__)

Backend = Literal["ort", "opencv"]
CUDA = "CUDAExecutionProvider"


class ModelSession(Protocol):
    input_name: str
    output_names: list[str]

    def run(self, feed: np.ndarray) -> list[np.ndarray]:
        """Run the model on one NCHW float32 batch; outputs in ``output_names`` order."""


class OrtSession:
    """ONNX Runtime session with its providers and thread counts set explicitly."""

    def __init__(self, model: Path | bytes, threads: int, providers: list[str]) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # Requests run in parallel threads; a model's own inter-op pool would only contend.
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feed: np.ndarray) -> list[np.ndarray]:
        return self.session.run(self.output_names, {self.input_name: feed})


class OpenCvSession:
    """OpenCV DNN net. A net is not thread-safe, so concurrent calls each borrow one from a
    pool that grows to the number of threads that ever ran the model at once (each net holds
    its own copy of the weights: ~125 MB for SFace and fr_feature together)."""

    def __init__(self, model: Path | bytes, output_names: list[str], input_name: str) -> None:
        self.model = model
        self.input_name = input_name
        self.output_names = output_names
        self._idle: list = []
        self._lock = threading.Lock()

    def _new_net(self):
        import cv2

        if isinstance(self.model, bytes):
            net = cv2.dnn.readNetFromONNX(np.frombuffer(self.model, np.uint8))
        else:
            net = cv2.dnn.readNetFromONNX(str(self.model))
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        return net

    def run(self, feed: np.ndarray) -> list[np.ndarray]:
        with self._lock:
            net = self._idle.pop() if self._idle else None
        net = net or self._new_net()
        try:
            net.setInput(feed, self.input_name)
            return list(net.forward(self.output_names))
        finally:
            with self._lock:
                self._idle.append(net)


@functools.cache
def load_cuda_libraries() -> None:
    """Load CUDA's and cuDNN's libraries before the first CUDA session, once per process.

    onnxruntime-gpu's CUDA provider library looks for them only beside itself and on the
    loader's paths; installed as pip packages (``onnxruntime-gpu[cuda,cudnn]``: nvidia-*) they are
    on neither, and every session then fell back to the CPU with no more than a printed "EP
    Error". ``preload_dlls`` (onnxruntime >= 1.21) loads them from the nvidia packages in
    onnxruntime's own site-packages, else from the loader's paths (a CUDA base image)."""
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    try:
        preload()
    except Exception as error:  # a library it cannot load leaves the CPU fallback
        log.warning("onnxruntime.preload_dlls failed: %s", error)


def ort_providers(device: str) -> list[str]:
    """CUDA first when asked for or available, CPU always as the fallback."""
    if uses_gpu(device):
        load_cuda_libraries()
        return [CUDA, "CPUExecutionProvider"]
    if device == "cuda":
        log.warning("CUDA requested but onnxruntime has no CUDA provider; using the CPU")
    return ["CPUExecutionProvider"]


def open_session(model: Path | onnx.ModelProto, backend: Backend, threads: int, device: str) -> ModelSession:
    """Build a session from a file or a graph edited in memory; OpenCV DNN is a CPU backend, so
    a GPU always gets ONNX Runtime."""
    providers = ort_providers(device)
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    if backend == "ort" or providers[0] == CUDA:
        return OrtSession(source, threads, providers)
    import cv2

    # OpenCV's pool (DNN, resize, decode) is process-wide and defaults to every core; requests
    # already run in parallel, so it gets the same threads as ONNX Runtime's intra-op pool.
    # Measured on 2 busy cores: a serial detect + embed took 115 ms with 2 threads, 52 with 1.
    cv2.setNumThreads(threads)
    graph = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    weights = {t.name for t in graph.graph.initializer}
    input_name = next(i.name for i in graph.graph.input if i.name not in weights)
    return OpenCvSession(source, [o.name for o in graph.graph.output], input_name)


def uses_gpu(device: str) -> bool:
    """Whether sessions opened for ``device`` run on CUDA."""
    import onnxruntime as ort

    return device != "cpu" and CUDA in ort.get_available_providers()
