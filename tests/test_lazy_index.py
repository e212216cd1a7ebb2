"""Bounded index memory (index/lazy.py): groups loaded on first use from Redis (a stored built
index or the faces), the least recently used evicted, within a budget; real Redis."""
from __future__ import annotations

import re
import secrets
import threading
import time

import numpy as np
import pytest
import requests

from bench.nodes import people, v3
from index.group_index import GroupIndex
from index.lazy import RESTORE_SHARE
from service.library.face_library import NewFace, token_of
from service.library.indexes import start_lazy_indexes
from service.library.offline import offline_library
from service.ops.local_server import start_gunicorn, stop_gunicorn
from service.store.built_indexes import CHUNK_BYTES, BuiltIndexStore
from service.store.faces import FaceStore
from service.store.redis_server import connect
from tests.test_index import DIM, noisy, unit_vectors

APPROX_FROM = 700  # groups of 800 faces are quantised (fast-scan PQ), hence stored
GROUP = 800


@pytest.fixture
def lazy_settings(settings):
    def with_budget(megabytes: float):
        return settings.model_copy(
            update={"workers": 1, "index": settings.index.model_copy(update={"memory_mb": megabytes, "approx_from": APPROX_FROM})}
        )

    return with_budget


def fill(client, groups: list[str], size: int = GROUP, seed: int = 0) -> dict[str, np.ndarray]:
    """``size`` faces in each group, user ``<group>_<i>`` holding face i; their vectors by group."""
    library = offline_library(client, "model")
    vectors = {}
    for number, group in enumerate(groups):
        vectors[group] = unit_vectors(size, seed=seed + number)
        for i, vector in enumerate(vectors[group]):
            library.put_faces("app", f"{group}_{i}", [group], [NewFace(f"{group}{i}", vector)], "", replace=False)
    return vectors


def megabytes_of(vectors: np.ndarray) -> float:
    """What one group of these vectors holds in memory, in MB."""
    index = GroupIndex(DIM, APPROX_FROM)
    index.add(np.arange(len(vectors), dtype=np.int64), vectors)
    return index.memory_bytes / 2**20


def owner(client, face_id: int) -> str:
    return FaceStore(client).read_faces([("app", face_id)], ("uid",))[0].uid


def test_a_library_three_times_the_budget_answers_every_search_within_it(lazy_settings, redis_client):
    groups = ["g0", "g1", "g2"]
    vectors = fill(redis_client, groups)
    indexes = start_lazy_indexes(FaceStore(redis_client), "model", DIM, lazy_settings(1.5 * megabytes_of(vectors["g0"])))
    try:
        for group in groups:  # the first loads: from the faces, then stored
            indexes.search("app", [group], vectors[group][0], 1)
        for round_ in range(2):
            for group in groups:
                probes = noisy(vectors[group][:40], seed=10 + round_)
                for i, probe in enumerate(probes):
                    hit = indexes.search("app", [group], probe, 1)[0]
                    assert owner(redis_client, hit.face_id) == f"{group}_{i}"
                    assert indexes.registry.memory_bytes() <= indexes.budget_bytes
        assert indexes.loads == {"faces": 3, "stored": 6} and indexes.evictions == 8
    finally:
        indexes.close()


def test_changes_made_while_a_group_was_not_held_are_there_when_it_comes_back(lazy_settings, redis_client):
    vectors = fill(redis_client, ["g0", "g1"])
    indexes = start_lazy_indexes(FaceStore(redis_client), "model", DIM, lazy_settings(1.5 * megabytes_of(vectors["g0"])))
    library = offline_library(redis_client, "model")
    try:
        indexes.search("app", ["g0"], vectors["g0"][0], 1)
        indexes.search("app", ["g1"], vectors["g1"][0], 1)  # evicts g0
        assert not indexes.registry.holds("app", "g0")
        newcomer = unit_vectors(1, seed=99)[0]
        library.put_faces("app", "newcomer", ["g0"], [NewFace("new", newcomer)], "", replace=False)
        library.remove_user("app", "g0_5", None)
        indexes.catch_up("app")
        assert indexes.search("app", ["g0"], newcomer, 1)[0].face_id  # loaded again: stored + replay
        assert indexes.loads["stored"] == 1
        hit = indexes.search("app", ["g0"], newcomer, 1)[0]
        assert owner(redis_client, hit.face_id) == "newcomer"
        gone = indexes.search("app", ["g0"], vectors["g0"][5], 1)[0]
        assert owner(redis_client, gone.face_id) != "g0_5"
        assert len(indexes.registry.held("app", "g0")) == GROUP
    finally:
        indexes.close()


def test_a_write_to_a_held_group_is_searchable_at_once(lazy_settings, redis_client):
    vectors = fill(redis_client, ["g0"], size=50)
    indexes = start_lazy_indexes(FaceStore(redis_client), "model", DIM, lazy_settings(1))
    try:
        indexes.search("app", ["g0"], vectors["g0"][0], 1)
        newcomer = unit_vectors(1, seed=77)[0]
        offline_library(redis_client, "model").put_faces("app", "late", ["g0"], [NewFace("late", newcomer)], "", replace=False)
        indexes.catch_up("app")
        assert owner(redis_client, indexes.search("app", ["g0"], newcomer, 1)[0].face_id) == "late"
    finally:
        indexes.close()


def test_another_node_loads_the_stored_index_and_answers_the_same(lazy_settings, redis_client):
    vectors = fill(redis_client, ["big"])
    first = start_lazy_indexes(FaceStore(redis_client), "model", DIM, lazy_settings(1))
    second = start_lazy_indexes(FaceStore(redis_client), "model", DIM, lazy_settings(1))
    try:
        probes = noisy(vectors["big"][:20])
        answers = [[h.face_id for h in first.search("app", ["big"], p, 5)] for p in probes]
        assert first.loads == {"faces": 1}
        _wait_for(lambda: BuiltIndexStore(redis_client, "model").get("app", "big"))  # stored in the background
        assert [[h.face_id for h in second.search("app", ["big"], p, 5)] for p in probes] == answers
        assert second.loads == {"stored": 1}
    finally:
        first.close()
        second.close()


def test_a_group_larger_than_the_whole_budget_is_still_searched(lazy_settings, redis_client):
    vectors = fill(redis_client, ["big", "small"], size=GROUP)
    indexes = start_lazy_indexes(FaceStore(redis_client), "model", DIM, lazy_settings(0.01))
    try:
        for group in ("big", "small", "big"):
            hit = indexes.search("app", [group], vectors[group][3], 1)[0]
            assert owner(redis_client, hit.face_id) == f"{group}_3"
        hits = indexes.search("app", ["big", "small"], vectors["small"][4], 1)  # both pinned at once
        assert owner(redis_client, hits[0].face_id) == "small_4"
        assert len(indexes.registry.groups()) <= 1  # released: back within the budget as far as it goes
    finally:
        indexes.close()


def test_concurrent_searches_of_more_groups_than_fit_all_answer(lazy_settings, redis_client):
    groups = [f"g{i}" for i in range(4)]
    vectors = fill(redis_client, groups, size=100)
    indexes = start_lazy_indexes(FaceStore(redis_client), "model", DIM, lazy_settings(2.5 * megabytes_of(vectors["g0"])))
    wrong: list[str] = []

    def searcher(group: str) -> None:
        for i in range(30):
            hit = indexes.search("app", [group], vectors[group][i], 1)[0]
            if owner(redis_client, hit.face_id) != f"{group}_{i}":
                wrong.append(f"{group}_{i}")

    try:
        threads = [threading.Thread(target=searcher, args=(g,)) for g in groups * 2]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert wrong == [] and indexes.evictions > 0
    finally:
        indexes.close()


def test_a_held_group_that_took_many_changes_is_stored_again(lazy_settings, redis_client):
    fill(redis_client, ["big"])
    indexes = start_lazy_indexes(FaceStore(redis_client), "model", DIM, lazy_settings(1))
    built = BuiltIndexStore(redis_client, "model")
    try:
        indexes.search("app", ["big"], unit_vectors(1)[0], 1)
        stored = _wait_for(lambda: built.get("app", "big"))
        extra = int(1.25 * RESTORE_SHARE * GROUP)  # over the share of the grown group too
        library = offline_library(redis_client, "model")
        for i, vector in enumerate(unit_vectors(extra, seed=50)):
            library.put_faces("app", f"extra_{i}", ["big"], [NewFace(f"x{i}", vector)], "", replace=False)
        indexes.catch_up("app")
        indexes.search("app", ["big"], unit_vectors(1)[0], 1)
        again = _wait_for(lambda: (b := built.get("app", "big")) and b.position != stored.position and b)
        assert len(np.unique(again.blob)) > 1 and again.blob.size > stored.blob.size
    finally:
        indexes.close()


@pytest.mark.parametrize("redis", ["redis_client", "live_cluster"])
def test_built_indexes_are_chunked_and_the_newest_position_wins(redis, request):
    """On one Redis and on a Redis Cluster (the chunks share the app's slot)."""
    client = request.getfixturevalue(redis)
    client = client if redis == "redis_client" else connect(client.redis_url)
    app = secrets.token_hex(4)
    built = BuiltIndexStore(client, "model")

    def chunks() -> int:
        return sum(1 for _ in client.scan_iter(match=f"fs:{{{app}}}:built:model:g:*", count=1000))

    blob = np.random.default_rng(0).integers(0, 255, CHUNK_BYTES * 2 + 10, dtype=np.uint8)
    assert built.put(app, "g", blob, "200-1")
    assert chunks() == 3
    assert not built.put(app, "g", blob[:10], "100-5")  # older: refused, its chunk removed
    assert chunks() == 3
    stored = built.get(app, "g")
    assert stored.position == "200-1" and np.array_equal(stored.blob, blob)
    assert built.put(app, "g", blob[:10], "200-2")
    assert chunks() == 1  # the replaced chunks went
    assert np.array_equal(built.get(app, "g").blob, blob[:10])


def test_deleting_a_group_deletes_its_stored_index(redis_client):
    app = secrets.token_hex(4)
    library = offline_library(redis_client, "model")
    for group in ("gone", "kept"):
        library.add_group(app, group)
        assert library.built.put(app, group, np.zeros(CHUNK_BYTES + 1, np.uint8), "100-1")

    library.delete_group(app, "gone")

    assert library.built.get(app, "gone") is None
    assert not list(redis_client.scan_iter(match=f"fs:{{{app}}}:built:model:gone*", count=1000))
    assert library.built.get(app, "kept") is not None


def test_a_group_its_last_user_leaves_loses_its_stored_index(redis_client):
    """v2 has no group/delete: a group is gone when its last user leaves (user/delete or its
    last face deleted), and its stored index with it; a group with users keeps its copy."""
    app = secrets.token_hex(4)
    library = offline_library(redis_client, "model")
    vector = unit_vectors(1)[0]
    library.put_faces(app, "u", ["left", "kept"], [NewFace("d1", vector)], "", replace=False)
    library.put_faces(app, "v", ["kept", "by_face"], [NewFace("d2", vector)], "", replace=False)
    for group in ("left", "kept", "by_face"):
        assert library.built.put(app, group, np.zeros(CHUNK_BYTES + 1, np.uint8), "100-1")

    library.remove_user(app, "u", ["left"])
    face = library.store.user_faces(app, "by_face", "v")[0]
    library.delete_face(app, "v", "by_face", token_of(app, face))

    for group in ("left", "by_face"):
        assert library.built.get(app, group) is None
        assert not list(redis_client.scan_iter(match=f"fs:{{{app}}}:built:model:{group}*", count=1000))
    assert library.built.get(app, "kept") is not None


def _wait_for(found, seconds: float = 10.0):
    """What ``found`` returns once it is truthy (the index is stored in a background thread)."""
    for _ in range(int(seconds / 0.05)):
        value = found()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("not stored in time")


@pytest.mark.parametrize("redis", ["live", "live_cluster"])
def test_a_node_with_a_budget_smaller_than_its_library_answers_every_identify(redis, request, tmp_path):
    """A real node (gunicorn, real photos; on one Redis and on a Redis Cluster) whose budget
    holds one of its three groups: every person is found in their group, and in all three at
    once; the worker stays in budget."""
    live = request.getfixturevalue(redis)
    budget_mb = 0.025  # 6 faces of the fused profile take ~16 KB: one group fits, not two
    process, base = start_gunicorn(live.redis_url, tmp_path / "node", workers=1, log_path=tmp_path / "node.log",
                                   env={"FACESVC_INDEX__MEMORY_MB": str(budget_mb)})
    try:
        app = live.new_app()
        token = live.token(app)
        enrolled = people(18)
        for n, (_, photo, _) in enumerate(enrolled):
            body = {"image": photo, "image_type": "BASE64", "group_id": f"g{n % 3}", "user_id": f"u{n}"}
            assert v3(base, token, "faceset/user/add", body)["error_code"] == 0
        for n, (_, _, other) in enumerate(enrolled):
            for groups in (f"g{n % 3}", "g0,g1,g2"):  # v2: the best user whatever the score
                answer = requests.post(f"{base}/rest/2.0/face/v2/identify", params={"access_token": token},
                                       data={"group_id": groups, "images": other}, timeout=60).json()
                assert answer["result"][0]["uid"] == f"u{n}", (n, groups, answer)
            held = re.search(r"^facesvc_index_memory_bytes (\S+)$", requests.get(f"{base}/metrics", timeout=10).text, re.M)
            assert 0 < float(held.group(1)) <= budget_mb * 2**20
        assert "loaded from faces" in (tmp_path / "node.log").read_text() and "evicted" in (tmp_path / "node.log").read_text()
    finally:
        stop_gunicorn(process)
