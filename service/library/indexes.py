"""This process's vector search: every group's FAISS index in memory (index/local.py), loaded
from the newest snapshot or from Redis, then following the change streams; or, with
``index.memory_mb``, the groups in use within that budget (index/lazy.py)."""
from __future__ import annotations

import logging

from config.defaults import Settings
from index.group_index import set_threads
from index.lazy import LazyIndexes
from index.local import LocalIndexes
from index.registry import IndexRegistry
from index.snapshot import SnapshotStore
from index.sync import IndexSync
from service.store.built_indexes import BuiltIndexStore
from service.store.changes import RedisChangeSource, library_id, load_all_faces
from service.store.faces import FaceStore

log = logging.getLogger(__name__)
MB = 1024 * 1024


def start_indexes(store: FaceStore, model_id: str, dim: int, settings: Settings) -> LocalIndexes:
    """Every group held (the default) or, with ``index.memory_mb``, the groups in use."""
    if settings.index.memory_mb:
        return start_lazy_indexes(store, model_id, dim, settings)
    return start_local_indexes(store, model_id, dim, settings)


def start_lazy_indexes(store: FaceStore, model_id: str, dim: int, settings: Settings) -> LazyIndexes:
    """No group held yet: the change streams followed from their heads, each group loaded from
    Redis on first use. The node's budget is shared by its workers, each holding its own."""
    set_threads(settings.index.threads)
    source = RedisChangeSource(store, model_id)
    registry = IndexRegistry(dim, settings.index.approx_from, lazy=True)
    sync = IndexSync(registry, source, source.heads(source.apps()))
    sync.start()
    budget = int(settings.index.memory_mb * MB / settings.workers)
    log.info("indexes loaded on first use, %.1f MB for this worker", budget / MB)
    return LazyIndexes(registry, sync, source, BuiltIndexStore(store.redis, model_id), budget)


def start_local_indexes(store: FaceStore, model_id: str, dim: int, settings: Settings) -> LocalIndexes:
    """Load the newest index snapshot, or else every face from Redis, then follow the change
    streams from the positions the snapshot includes (from where the load began), so that
    writes made since are replayed rather than lost."""
    set_threads(settings.index.threads)
    source = RedisChangeSource(store, model_id)
    snapshots = SnapshotStore(settings.snapshot_dir, model_id, library_id(store.redis))
    snapshot = snapshots.load(settings.index.approx_from, source.holds_after)
    if snapshot:
        registry, positions = snapshot.registry, snapshot.positions
    else:
        registry, positions = IndexRegistry(dim, settings.index.approx_from), source.heads(source.apps())
        # An app found only in its faces (stored before streams per app) replays its stream,
        # if any, from the start: harmless.
        positions = {app: "0-0" for app in load_all_faces(store, registry, model_id)} | positions
    sync = IndexSync(
        registry, source, positions, snapshots, settings.index.snapshot_seconds, positions if snapshot else None
    )
    replayed = sync.catch_up()
    sync.start()
    faces = sum(registry.size(app, group) for app, group in registry.groups())
    origin = f"a snapshot + {replayed} changes" if snapshot else "Redis"
    log.info("indexes loaded from %s: %d faces in %d groups", origin, faces, len(registry.groups()))
    return LocalIndexes(registry, sync)
