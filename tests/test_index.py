"""Group indexes: exact and quantised search, tombstones, compaction, snapshots and replay."""
from __future__ import annotations

import json
import threading
from dataclasses import replace

import faiss
import numpy as np
import pytest
from pydantic import ValidationError

from index.group_index import RERANK_POOL, GroupIndex, set_threads
from index.registry import IndexRegistry
from index.snapshot import SnapshotStore, stream_key
from config.defaults import Index, load_settings
from index.sync import Change, IndexSync
from service.library.check import check_library
from service.library.face_library import NewFace
from service.library.indexes import start_local_indexes
from service.library.offline import offline_library
from service.store.faces import FaceStore

DIM = 64
APPROX_FROM = Index().approx_from


def unit_vectors(count: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def noisy(vectors: np.ndarray, scale: float = 0.3, seed: int = 1) -> np.ndarray:
    """Probes near the given vectors, as a second photo of the same face would be."""
    moved = vectors + scale * unit_vectors(len(vectors), seed)
    return (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(np.float32)


def test_small_group_is_exact_and_finds_each_face():
    index = GroupIndex(DIM, approx_from=1000)
    vectors = unit_vectors(100)
    index.add(np.arange(100, dtype=np.int64) + 10, vectors)
    scores, ids, _ = index.search(vectors[7], 3)
    assert index.exact and ids[0] == 17 and scores[0] == pytest.approx(1.0, abs=1e-5)


def test_adding_an_id_twice_or_removing_an_absent_one_changes_nothing():
    index = GroupIndex(DIM, approx_from=1000)
    vectors = unit_vectors(5)
    index.add(np.arange(5, dtype=np.int64), vectors)
    index.add(np.arange(5, dtype=np.int64), vectors)
    index.remove([99])
    assert len(index) == 5 and index.tombstones == 0


def test_removed_faces_vanish_at_once_and_compaction_drops_them_from_faiss():
    index = GroupIndex(DIM, approx_from=1000)
    vectors = unit_vectors(50)
    index.add(np.arange(50, dtype=np.int64), vectors)
    index.remove([3, 4])
    _, ids, _ = index.search(vectors[3], 50)
    assert 3 not in ids and 4 not in ids and len(ids) == 48 and index.tombstones == 2
    assert index.compact() == 2
    _, ids, _ = index.search(vectors[3], 50)
    assert index.tombstones == 0 and len(ids) == 48 and 3 not in ids


def test_a_removed_id_is_not_brought_back_by_a_replayed_add():
    index = GroupIndex(DIM, approx_from=1000)
    vectors = unit_vectors(3)
    index.add(np.arange(3, dtype=np.int64), vectors)
    index.remove([1])
    index.add(np.array([1], dtype=np.int64), vectors[1:2])
    assert 1 not in index and 1 not in index.search(vectors[1], 3)[1]


def test_a_large_group_is_quantised_and_exact_reranking_of_its_candidates_keeps_recall():
    vectors = unit_vectors(3000)
    index = GroupIndex(DIM, approx_from=2000)
    for start in range(0, 3000, 500):
        index.add(np.arange(start, start + 500, dtype=np.int64), vectors[start : start + 500])
    assert not index.exact and len(index) == 3000
    assert index.vector_bytes == 3000 * DIM // 2 * 4 // 8  # 4-bit PQ codes: dim/2 sub-quantisers
    probes = noisy(vectors[:200])
    exact = np.argmax(probes @ vectors.T, axis=1)
    found = 0
    for probe, best in zip(probes, exact):
        _, candidates, _ = index.search(probe, 50)
        found += candidates[np.argmax(vectors[candidates] @ probe)] == best
    assert found / len(probes) >= 0.995


def test_quantised_group_keeps_tombstones_and_compacts():
    vectors = unit_vectors(600)
    index = GroupIndex(DIM, approx_from=500)
    index.add(np.arange(600, dtype=np.int64), vectors)
    index.remove([0, 1, 2])
    _, ids, _ = index.search(vectors[0], 10)
    assert not index.exact and not {0, 1, 2} & set(ids.tolist())
    assert index.compact() == 3 and len(index) == 597


def test_a_flat_group_answers_the_k_asked_and_a_quantised_one_a_pool_to_rerank():
    """An identify reads each candidate's owner from Redis: a flat group's exact top 10 are
    all a top-1 identify needs, while a quantised group's must be a pool the exact best is in."""
    registry = IndexRegistry(DIM, approx_from=500)
    vectors = unit_vectors(700)
    registry.add("app", "flat", np.arange(100, dtype=np.int64), vectors[:100])
    registry.add("app", "quantised", np.arange(100, 700, dtype=np.int64), vectors[100:])
    assert len(registry.search("app", ["flat"], vectors[0], 10)) == 10
    pool = registry.search("app", ["quantised"], vectors[200], 10)
    assert len(pool) == RERANK_POOL and not pool[0].exact
    both = registry.search("app", ["flat", "quantised"], vectors[0], 10)
    assert len(both) == RERANK_POOL and both[0].face_id == 0


def test_the_faiss_thread_setting_reaches_threads_started_after_it():
    """OpenMP keeps the thread count per thread: set at start, it did not reach gunicorn's
    request threads, whose every search ran (and spun) a team of all cores."""
    set_threads(1)
    index = GroupIndex(DIM, approx_from=1000)
    index.add(np.arange(10, dtype=np.int64), unit_vectors(10))
    seen = []

    def request_thread() -> None:
        index.search(unit_vectors(1, seed=3)[0], 1)
        seen.append(faiss.omp_get_max_threads())

    thread = threading.Thread(target=request_thread)
    thread.start()
    thread.join()
    assert seen == [1]


def test_registry_merges_the_top_k_of_several_groups():
    registry = IndexRegistry(DIM, APPROX_FROM)
    vectors = unit_vectors(20)
    registry.add("app", "a", np.arange(10, dtype=np.int64), vectors[:10])
    registry.add("app", "b", np.arange(10, 20, dtype=np.int64), vectors[10:])
    hits = registry.search("app", ["a", "b"], vectors[15], 3)
    assert [h.face_id for h in hits][0] == 15 and hits[0].group == "b"
    assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)


def test_snapshot_round_trip_keeps_groups_ids_and_results(tmp_path):
    registry = IndexRegistry(DIM, approx_from=500)
    vectors = unit_vectors(800)
    registry.add("app", "big", np.arange(800, dtype=np.int64), vectors)
    registry.add("app", "small", np.array([900], dtype=np.int64), vectors[:1])
    registry.remove("app", "big", [5])
    store = SnapshotStore(tmp_path, "model", "library-1")
    store.save(DIM, {"app": "12-3"}, registry.to_arrays())
    snapshot = store.load(500, lambda positions: True)
    assert snapshot.positions == {"app": "12-3"}
    loaded = snapshot.registry
    assert sorted(loaded.groups()) == [("app", "big"), ("app", "small")]
    assert loaded.group("app", "big").ids() == set(range(800)) - {5}
    assert loaded.search("app", ["big"], vectors[9], 1)[0].face_id == 9
    assert not loaded.group("app", "big").exact and loaded.group("app", "small").exact


def test_newest_snapshot_wins_and_old_ones_are_pruned(tmp_path):
    registry = IndexRegistry(DIM, APPROX_FROM)
    store = SnapshotStore(tmp_path, "model", "library-1")
    for position in ("9-0", "10-0", "10-2"):
        store.save(DIM, {"app": position}, registry.to_arrays())
    assert len(store.newest()) == 2
    assert store.load(100, lambda positions: True).positions == {"app": "10-2"}


def test_snapshot_is_refused_for_another_library_a_trimmed_stream_or_the_old_format(tmp_path):
    SnapshotStore(tmp_path, "model", "library-1").save(DIM, {"app": "5-0"}, IndexRegistry(DIM, APPROX_FROM).to_arrays())
    assert SnapshotStore(tmp_path, "model", "library-2").load(100, lambda positions: True) is None
    assert SnapshotStore(tmp_path, "model", "library-1").load(100, lambda positions: False) is None
    older = tmp_path / "old"
    older.mkdir()
    meta = {"model": "model", "source": "library-1", "position": "5-0", "dim": DIM, "groups": []}
    np.savez(older / "model.5-0.snapshot.npz", meta=np.array(json.dumps(meta)))  # one global stream's
    assert SnapshotStore(older, "model", "library-1").load(100, lambda positions: True) is None


class ListSource:
    """Change streams in a list (every change's app and position in it)."""

    def __init__(self, changes: list[Change]) -> None:
        self.changes = changes

    def apps(self) -> set[str]:
        return {c.app for c in self.changes}

    def heads(self, apps) -> dict[str, str]:
        return {app: max((c.position for c in self.changes if c.app == app), default="0-0", key=stream_key) for app in apps}

    def read(self, positions, wanted=None):
        after = [c for c in self.changes if c.app in positions and stream_key(c.position) > stream_key(positions[c.app])]
        return [c if wanted is None or wanted(c.app, c.group) else replace(c, vector=None, fetched=False) for c in after]

    def hint_head(self) -> str:
        return "0-0"

    def wait(self, after, block_ms):
        return after, set()


def test_an_addition_read_before_its_group_was_loaded_is_read_again_with_its_vector():
    """A lazy registry's follower reads an addition without its vector (its group not held),
    the group is loaded before the follower applies it: the follower must not skip it."""
    registry = IndexRegistry(DIM, APPROX_FROM, lazy=True)
    vectors = unit_vectors(2)

    class LoadingMeanwhile(ListSource):
        def read(self, positions, wanted=None):
            changes = super().read(positions, wanted)
            if not registry.holds("app", "g"):  # loaded, from faces read before the addition
                registry.install("app", "g", GroupIndex(DIM, APPROX_FROM))
            return changes

    sync = IndexSync(registry, LoadingMeanwhile([Change("1-0", "app", "add", "g", 7, vectors[0])]), {"app": "0-0"})
    assert sync.catch_up("app") == 1
    assert registry.group("app", "g").ids() == {7}


def test_replay_from_a_snapshot_position_applies_only_the_tail(tmp_path):
    vectors = unit_vectors(4)
    changes = [Change(f"{i + 1}-0", "app", "add", "g", i, vectors[i]) for i in range(3)]
    changes.append(Change("4-0", "app", "del", "g", 0, None))
    store = SnapshotStore(tmp_path, "model", "library-1")
    sync = IndexSync(IndexRegistry(DIM, APPROX_FROM), ListSource(changes[:2]), {}, store)
    sync.catch_up()
    assert sync.save_snapshot() and not sync.save_snapshot()  # nothing new the second time
    snapshot = store.load(100, lambda positions: True)
    assert snapshot.positions == {"app": "2-0"}
    resumed = IndexSync(snapshot.registry, ListSource(changes), snapshot.positions)
    assert resumed.catch_up() == 2
    assert resumed.registry.group("app", "g").ids() == {1, 2}


def store_faces(client, count: int, start: int = 0) -> None:
    library = offline_library(client, "model")
    for i in range(start, start + count):
        library.put_faces("app", f"u{i}", ["g"], [NewFace(f"digest{i}", unit_vectors(1, seed=i)[0])], "", replace=False)


def test_restart_loads_the_snapshot_and_replays_only_later_changes(settings, redis_client, caplog):
    store_faces(redis_client, 5)
    first = start_local_indexes(FaceStore(redis_client), "model", DIM, settings)
    first.close()  # writes the snapshot
    store_faces(redis_client, 2, start=5)
    offline_library(redis_client, "model").remove_user("app", "u0", None)
    caplog.set_level("INFO", logger="service.library.indexes")
    second = start_local_indexes(FaceStore(redis_client), "model", DIM, settings)
    try:
        assert "+ 3 changes" in caplog.text  # two adds and a delete after the snapshot
        assert len(second.registry.group("app", "g")) == 6
        assert check_library(FaceStore(redis_client), second.registry, "model") == []
    finally:
        second.close()


def test_a_snapshot_of_an_emptied_library_is_not_loaded(settings, redis_client):
    store_faces(redis_client, 3)
    start_local_indexes(FaceStore(redis_client), "model", DIM, settings).close()
    redis_client.flushall()
    store_faces(redis_client, 1)
    restarted = start_local_indexes(FaceStore(redis_client), "model", DIM, settings)
    try:
        assert len(restarted.registry.group("app", "g")) == 1
        assert check_library(FaceStore(redis_client), restarted.registry, "model") == []
    finally:
        restarted.close()


def test_a_group_cannot_be_set_to_quantise_before_its_codebooks_can_be_trained(monkeypatch):
    """FACESVC_INDEX__APPROX_FROM=10 made every write to a group of 10 faces fail in FAISS's
    training (16 centroids need 16 faces at least): the setting refuses it."""
    monkeypatch.setenv("FACESVC_INDEX__APPROX_FROM", "10")
    with pytest.raises(ValidationError, match="approx_from"):
        load_settings()
