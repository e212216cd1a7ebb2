"""Micro-batching across concurrent requests (workers/batcher.py) with the real models."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from config.defaults import Models, load_settings
from service.app import create_app
from tests.helpers import ROOT, BaiduClient, b64, client_of, photo, smoke_identities
from workers.batcher import Batcher, _Request
from workers.detector import Detector
from service.inference import load_pipeline
from workers import pipeline as pipeline_module
from workers.pipeline import Pipeline
from workers.session import ModelSession


class Recorder:
    """A real model session that remembers how many rows each call carried."""

    def __init__(self, session: ModelSession) -> None:
        self.session = session
        self.input_name = session.input_name
        self.output_names = session.output_names
        self.rows: list[int] = []

    def run(self, feed: np.ndarray) -> list[np.ndarray]:
        self.rows.append(len(feed))
        return self.session.run(feed)


@pytest.fixture(scope="module")
def crops(pipeline) -> np.ndarray:
    """Aligned 112x112 crops of eight different faces-smoke photos, as the embedders take them."""
    paths = [paths[0] for paths in smoke_identities().values()][:8]
    images = [pipeline.decode(photo(p)) for p in paths]
    return np.stack([pipeline.crop(image, pipeline.detect(image, 1)[0]) for image in images])


def embedder_input(crops: np.ndarray) -> np.ndarray:
    """SFace's NCHW float input for ``crops``."""
    return np.ascontiguousarray(crops[..., ::-1].astype(np.float32).transpose(0, 3, 1, 2))


def concurrently(function, arguments: list) -> list:
    """``function`` on every argument, all calls released at once from their own threads."""
    start = threading.Barrier(len(arguments))

    def call(argument):
        start.wait()
        return function(argument)

    with ThreadPoolExecutor(len(arguments)) as pool:
        return list(pool.map(call, arguments))


def sface(pipeline) -> ModelSession:
    return next(p.session for p in pipeline.embedder.parts if p.spec.name == "sface")


def embed_concurrently(pipeline, feed: np.ndarray, max_rows: int) -> tuple[list[np.ndarray], Batcher, Recorder]:
    """Each row of ``feed`` through SFace from its own thread, batched by up to ``max_rows``."""
    recorder = Recorder(sface(pipeline))
    batcher = Batcher(recorder, max_rows=max_rows, max_wait=0.5, name="sface")
    try:
        answers = concurrently(lambda i: batcher.run(feed[i : i + 1])[0], list(range(len(feed))))
    finally:
        batcher.close()
    return answers, batcher, recorder


def test_concurrent_calls_share_model_calls_and_get_their_own_rows(pipeline, crops):
    feed = embedder_input(crops)
    alone = [sface(pipeline).run(feed[i : i + 1])[0] for i in range(len(feed))]
    answers, batcher, recorder = embed_concurrently(pipeline, feed, max_rows=8)
    assert len(recorder.rows) < len(feed)  # some calls were batched together
    assert sum(recorder.rows) == len(feed) and batcher.rows == len(feed) and batcher.calls == len(recorder.rows)
    for mine, reference in zip(answers, alone):
        assert mine.shape == (1, 128)
        np.testing.assert_allclose(mine, reference, atol=1e-4)


def test_a_batch_never_exceeds_its_row_limit(pipeline, crops):
    feed = embedder_input(crops)
    answers, _, recorder = embed_concurrently(pipeline, feed, max_rows=3)
    assert max(recorder.rows) <= 3 and sum(recorder.rows) == len(feed)
    assert len({a.tobytes() for a in answers}) == len(feed)


def test_a_request_that_would_overfill_a_batch_waits_for_the_next(pipeline, crops):
    """Requests of two rows against a limit of three: never two of them in one call."""
    feed = embedder_input(crops)
    recorder = Recorder(sface(pipeline))
    batcher = Batcher(recorder, max_rows=3, max_wait=0.5, name="sface")
    try:
        answers = concurrently(lambda i: batcher.run(feed[i : i + 2])[0], [0, 2, 4, 6])
    finally:
        batcher.close()
    assert recorder.rows == [2, 2, 2, 2]
    np.testing.assert_allclose(np.concatenate(answers), sface(pipeline).run(feed)[0], atol=1e-4)


def test_a_lone_request_runs_without_waiting_for_a_full_batch(pipeline, crops):
    feed = embedder_input(crops)
    batcher = Batcher(sface(pipeline), max_rows=16, max_wait=0.002, name="sface")
    try:
        vectors = batcher.run(feed[:2])[0]
    finally:
        batcher.close()
    assert vectors.shape == (2, 128) and batcher.calls == 1


def test_inputs_of_different_shapes_run_in_separate_calls(pipeline):
    """The detector's canvases follow the photos' sizes: each size is its own batch."""
    images = [pipeline.decode(photo(p)) for p in ("images/person01/img1.jpg", "images/person02/img3.jpg")]
    small = cv2.resize(images[0], None, fx=300 / max(images[0].shape), fy=300 / max(images[0].shape))
    recorder = Recorder(pipeline.detector.session)
    batcher = Batcher(recorder, max_rows=8, max_wait=0.5, name="yunet")
    detector = Detector(batcher, pipeline.detector.threshold, pipeline.detector.max_side)
    try:
        found = concurrently(detector.detect, [images[0], small, images[1], images[0]])
    finally:
        batcher.close()
    assert sum(recorder.rows) == 4 and len(recorder.rows) >= 2
    expected = [pipeline.detector.detect(image) for image in (images[0], small, images[1], images[0])]
    for mine, reference in zip(found, expected):
        assert len(mine) == len(reference) >= 1
        np.testing.assert_allclose(mine[0].box, reference[0].box, atol=1e-3)


def test_a_failing_call_fails_its_callers_and_the_batcher_goes_on(pipeline):
    """ONNX Runtime refuses a canvas with two channels; the detector's batcher reports that to
    the callers in that batch and serves the next one."""
    batcher = Batcher(pipeline.detector.session, max_rows=8, max_wait=0.05, name="yunet")
    try:
        with pytest.raises(Exception, match="(?i)dimension|shape|channel"):
            batcher.run(np.zeros((1, 2, 64, 64), np.float32))
        assert batcher.run(np.zeros((1, 3, 64, 64), np.float32))[0].shape[0] == 1
    finally:
        batcher.close()


def test_a_closed_batcher_refuses_work(pipeline, crops):
    batcher = Batcher(sface(pipeline), max_rows=8, max_wait=0.001, name="sface")
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.run(embedder_input(crops)[:1])


def test_a_request_queued_behind_the_close_is_refused_not_left_waiting(pipeline, crops):
    batcher = Batcher(sface(pipeline), max_rows=8, max_wait=0.001, name="sface")
    late = _Request(embedder_input(crops)[:1])
    batcher._queue.put(None)  # the thread stops here, as if close() had just been called ...
    batcher._queue.put(late)  # ... and a request slipped in behind it
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        late.answer.result(timeout=5)


def test_batching_is_off_on_cpu_by_default(pipeline):
    assert Models().batch_size is None
    assert not isinstance(pipeline.detector.session, Batcher)
    assert not any(isinstance(p.session, Batcher) for p in pipeline.embedder.parts)


def test_batching_is_off_on_a_gpu_by_default(monkeypatch):
    """On an H200 the calls that batched several requests held them 4-6 s each, where single
    requests took 25 ms (README, "GPU"). No GPU here: the pipeline is told it has one."""
    monkeypatch.setattr(pipeline_module, "uses_gpu", lambda device: True)
    on_gpu = load_pipeline(load_settings(data_dir=ROOT / "var"))
    assert on_gpu.precision == "fp32"  # proof that it took itself for a GPU pipeline
    assert not isinstance(on_gpu.detector.session, Batcher)
    assert not any(isinstance(p.session, Batcher) for p in on_gpu.embedder.parts)


@pytest.fixture(scope="module")
def batched_pipeline() -> Pipeline:
    settings = load_settings(data_dir=ROOT / "var", models=Models(batch_size=4, batch_wait_ms=50))
    return load_pipeline(settings)


def test_a_batching_service_answers_concurrent_identifies_as_an_unbatched_one(settings, pipeline, batched_pipeline, redis_client):
    """Identify over HTTP with batching on: the same people and scores as without it."""
    people = smoke_identities()
    enrolled = sorted(people)[:6]
    probes = [people[name][1] for name in enrolled]
    answers = {}
    for name, used in (("plain", pipeline), ("batched", batched_pipeline)):
        app = create_app(settings, pipeline=used)
        try:
            api = client_of(app)
            for person in enrolled:
                added = api.call("faceset/user/add", uid=person, user_info="", group_id="g", image=b64(photo(people[person][0])))
                assert "error_code" not in added, added
            calls = concurrently(
                lambda p: BaiduClient(app.test_client(), api.token).call("identify", group_id="g", image=b64(photo(p))), probes
            )
            answers[name] = [(a["result"][0]["uid"], a["result"][0]["scores"][0]) for a in calls]
        finally:
            app.extensions["facesvc"].close()
            redis_client.flushall()
    assert [uid for uid, _ in answers["batched"]] == enrolled
    assert [uid for uid, _ in answers["plain"]] == enrolled
    np.testing.assert_allclose([s for _, s in answers["batched"]], [s for _, s in answers["plain"]], atol=1e-3)
    sessions = [batched_pipeline.detector.session, *(p.session for p in batched_pipeline.embedder.parts)]
    assert all(isinstance(s, Batcher) for s in sessions)
    assert any(s.calls < s.rows for s in sessions)  # concurrent requests did share model calls
