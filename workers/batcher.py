"""Micro-batching: one model call for the inputs of several concurrent requests.

A ``Batcher`` stands in for a model session (same ``run(feed)``). Request threads hand it their
rows and wait; one thread per model gathers whatever arrives within ``max_wait`` seconds of
the first row, up to ``max_rows``, runs the model once on rows of the same shape and hands
each caller its slice of the outputs. Graphs must take any batch size (workers/graphs.py).

A request is never split: one with more rows than ``max_rows`` runs as a batch of its own.
On CPU a batch cost what its rows cost one by one and the waiting added latency (README,
"Performance"); on an H200 a model call of several requests' rows held them 4-6 s where single
requests took 25 ms, for a reason not yet found (README, "GPU"). So batching is off by default
on both (FACESVC_MODELS__BATCH_SIZE turns it on).
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from workers.session import ModelSession


@dataclass
class _Request:
    feed: np.ndarray
    answer: Future = field(default_factory=Future)


class Batcher:
    """A ``ModelSession`` that batches concurrent ``run`` calls into one call of ``session``."""

    def __init__(self, session: ModelSession, max_rows: int, max_wait: float, name: str = "model") -> None:
        self.session = session
        self.input_name = session.input_name
        self.output_names = session.output_names
        self.max_rows = max_rows
        self.max_wait = max_wait
        self.calls = 0  # model calls and the rows they carried: rows / calls is the mean batch
        self.rows = 0
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def run(self, feed: np.ndarray) -> list[np.ndarray]:
        """The outputs for ``feed`` (N rows), as ``session.run(feed)`` would give them."""
        if not self._thread.is_alive():
            raise RuntimeError("batcher is closed")
        request = _Request(np.ascontiguousarray(feed))
        self._queue.put(request)
        return request.answer.result()

    def close(self) -> None:
        """Finish the batches queued before this call, stop the thread, and refuse any request
        that slipped in after."""
        self._queue.put(None)
        self._thread.join()
        while True:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                return
            if request is not None:
                request.answer.set_exception(RuntimeError("batcher is closed"))

    def _serve(self) -> None:
        carried: _Request | None = None  # the request that would have overfilled the last batch
        while True:
            first = carried or self._queue.get()
            if first is None:
                return
            pending, carried, closing = self._gather(first)
            for group in _same_shape(pending):
                self._run(group)
            if closing:
                return

    def _gather(self, first: _Request) -> tuple[list[_Request], _Request | None, bool]:
        """``first`` and what joins it before the deadline within the row limit; the request
        that did not fit, if any; True when the batcher was closed meanwhile."""
        pending, rows = [first], len(first.feed)
        deadline = time.monotonic() + self.max_wait
        while rows < self.max_rows:
            try:
                request = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if request is None:
                return pending, None, True
            if rows + len(request.feed) > self.max_rows:
                return pending, request, False
            pending.append(request)
            rows += len(request.feed)
        return pending, None, False

    def _run(self, group: list[_Request]) -> None:
        try:
            outputs = self.session.run(np.concatenate([r.feed for r in group]))
        except Exception as error:  # every waiting request learns why
            for request in group:
                request.answer.set_exception(error)
            return
        self.calls += 1
        self.rows += sum(len(r.feed) for r in group)
        start = 0
        for request in group:
            stop = start + len(request.feed)
            request.answer.set_result([output[start:stop] for output in outputs])
            start = stop


def _same_shape(requests: list[_Request]) -> list[list[_Request]]:
    """Requests grouped by the shape of one row, in arrival order (the detector's canvases
    differ with the photos)."""
    groups: dict[tuple[int, ...], list[_Request]] = {}
    for request in requests:
        groups.setdefault(request.feed.shape[1:], []).append(request)
    return list(groups.values())
