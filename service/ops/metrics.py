"""Prometheus metrics of one facesvc process, and their exposition at ``/metrics``.

Under gunicorn every worker counts its own requests, so samples go through prometheus_client's
multiprocess mode: ``facesvc serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at an emptied folder
under the data dir, each worker writes its counters there, and a scrape of any worker sums
them (gunicorn's ``child_exit`` hook marks dead workers). Index sizes are not counters but a
view of the indexes, which every process holds (each follows the change streams: every group,
or with ``index.memory_mb`` the groups it loaded), so the answering worker reports its own.

Model time is measured here, around the pipeline's parts, so that ``workers/`` stays free of
Prometheus. The batch size recorded is what one request hands a model (1 photo to the
detector, the faces of one photo to the embedder); with micro-batching on (workers/batcher.py,
off by default on CPU) several requests' inputs may then run in one model call, which these
samples do not show.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterator, Optional

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from index.registry import IndexRegistry
from workers.pipeline import Pipeline

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MODEL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

# What each pipeline part's timed method is, and how its arguments name the stage and batch.
Describe = Callable[..., tuple[str, int]]
TIMED_PARTS: dict[str, tuple[str, Describe]] = {
    "detector": ("detect", lambda image: ("detect", 1)),
    "embedder": ("embed", lambda crops: ("embed", len(crops))),
    "heads": ("run", lambda name, batch: (name, len(batch))),
}


class IndexCollector:
    """What the indexes hold, read at scrape time: faces and groups in all, the bytes of
    vectors, and — only when ``per_group`` — faces per (app, group). Per-group series name
    every tenant's app ids and groups to whoever can reach /metrics, so they are off by
    default; a group without faces (deleted) has no series."""

    def __init__(self, registry: IndexRegistry, per_group: bool = False) -> None:
        self.registry = registry
        self.per_group = per_group

    def collect(self) -> Iterator[Metric]:
        sizes = {key: self.registry.size(*key) for key in self.registry.groups()}
        sizes = {key: size for key, size in sorted(sizes.items()) if size}
        faces = GaugeMetricFamily("facesvc_index_faces", "Faces indexed by this process, all groups together")
        faces.add_metric([], sum(sizes.values()))
        groups = GaugeMetricFamily("facesvc_index_groups", "Groups with faces indexed by this process")
        groups.add_metric([], len(sizes))
        memory = GaugeMetricFamily("facesvc_index_vector_bytes", "Bytes of face codes held by this process's indexes")
        memory.add_metric([], self.registry.vector_bytes())
        held = GaugeMetricFamily(
            "facesvc_index_memory_bytes", "Bytes this process's indexes hold: codes, id maps and id sets (what index.memory_mb bounds)"
        )
        held.add_metric([], self.registry.memory_bytes())
        yield from (faces, groups, memory, held)
        if self.per_group:
            per_group = GaugeMetricFamily("facesvc_group_faces", "Faces indexed in a group", labels=["app", "group"])
            for (app, group), size in sizes.items():
                per_group.add_metric([app, group], size)
            yield per_group


class Metrics:
    """This process's request and model metrics."""

    def __init__(self, indexes: IndexRegistry, per_group: bool = False) -> None:
        # prometheus_client chose its sample storage from this variable when it was imported;
        # exposition must read the same place.
        self.multiprocess_dir: Optional[str] = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self.registry = CollectorRegistry()
        self.indexes = IndexCollector(indexes, per_group)
        self.registry.register(self.indexes)
        self.requests = Counter(
            "facesvc_requests", "Requests answered", ["endpoint", "error_code"], registry=self.registry
        )
        self.latency = Histogram(
            "facesvc_request_seconds", "Time to answer a request", ["endpoint", "error_code"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.model_time = Histogram(
            "facesvc_model_seconds", "Time of one model call", ["stage"], buckets=MODEL_BUCKETS, registry=self.registry
        )
        self.batch_size = Histogram(
            "facesvc_model_batch_size", "Inputs in one model call", ["stage"], buckets=BATCH_BUCKETS, registry=self.registry
        )

    def observe_request(self, endpoint: str, error_code: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(error_code)).inc()
        self.latency.labels(endpoint, str(error_code)).observe(seconds)

    def observe_model(self, stage: str, batch: int, seconds: float) -> None:
        self.model_time.labels(stage).observe(seconds)
        self.batch_size.labels(stage).observe(batch)

    def render(self) -> tuple[bytes, str]:
        """The text exposition: every worker's samples when multiprocess, else this one's."""
        if not self.multiprocess_dir:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        registry.register(self.indexes)
        return generate_latest(registry), CONTENT_TYPE_LATEST


class TimedPart:
    """A pipeline part whose one ``method`` reports its duration and batch size to ``metrics``;
    every other attribute passes through untouched."""

    def __init__(self, part: Any, method: str, describe: Describe, metrics: Metrics) -> None:
        self._part, self._method, self._describe = part, method, describe
        self.metrics = metrics

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._part, name)
        if name != self._method:
            return target

        def timed(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return target(*args)
            finally:
                stage, batch = self._describe(*args)
                self.metrics.observe_model(stage, batch, time.perf_counter() - started)

        return timed


def instrument_pipeline(pipeline: Pipeline, metrics: Metrics) -> None:
    """Time the detector, the embedder and each attribute head. A pipeline already instrumented
    (one shared by several apps, as in tests) reports to the newest ``metrics``."""
    for attribute, (method, describe) in TIMED_PARTS.items():
        part = getattr(pipeline, attribute)
        if isinstance(part, TimedPart):
            part.metrics = metrics
        else:
            setattr(pipeline, attribute, TimedPart(part, method, describe, metrics))
