"""One group's face vectors under their 64-bit face ids, searched by inner product.

A small group is searched exactly (``IndexFlatIP``). From ``approx_from`` faces on, the group
switches to 4-bit product quantisation of every pair of dimensions scanned with FAISS fast scan
(``PQ{dim/2}x4fs``): 160 bytes a 640-d face instead of 2,560, a full scan of 300,000 faces in
~2 ms instead of ~30 ms. Its similarities are approximate; the caller re-ranks the candidates
with the exact vectors it stores anyway (the library reads them from Redis with each hit's
owner). Measured with bench/search.py: the exact best face is among the 50 best approximate
ones for every LFW probe against 300,000 faces; a partition (IVF) index missed 6-42 % of them,
face embeddings having too little cluster structure.

Removal is a tombstone, filtered at search time, so a delete never waits for FAISS to rewrite
its arrays; ``compact()`` (a background thread) removes them for real.
"""
from __future__ import annotations

import sys
import threading
from typing import Optional

import faiss
import numpy as np

# An approximate group answers a search with at least this many candidates, the pool its caller
# re-ranks exactly (bench/search.py: the exact best face is among the 50 best approximate). A
# flat group's similarities are exact: it answers with the k asked for.
RERANK_POOL = 50
# The PQ codebooks are trained once, on the first faces of a group when it turns approximate;
# LFW-like embeddings need no more than this many to train 16 centroids per 2-d subspace.
TRAIN_SAMPLE = 50_000
# Tombstones beyond this many are compacted on the spot, so a search never asks FAISS for an
# unbounded number of extra candidates.
MAX_TOMBSTONES = 1_000
# Bytes of one Python int in the id sets (face ids are below 2**60).
INT_BYTES = 32


# OpenMP's thread count is a setting of each thread, not of the process: set once at start, it
# did not reach the request threads gunicorn starts later, whose searches ran a team of every
# core. So each thread that calls FAISS applies the count before its first call.
_threads = 1
_applied = threading.local()


def set_threads(count: int) -> None:
    """FAISS's OpenMP threads for every thread of this process that calls FAISS."""
    global _threads
    _threads = count
    use_threads()


def use_threads() -> None:
    """Apply ``set_threads``'s count to the calling thread (once, until it changes)."""
    if getattr(_applied, "count", None) != _threads:
        faiss.omp_set_num_threads(_threads)
        _applied.count = _threads


class GroupIndex:
    """Adding an id twice or removing an absent id is a no-op, so changes can be replayed from
    the stream without bookkeeping."""

    def __init__(self, dim: int, approx_from: int) -> None:
        self.dim = dim
        self.approx_from = approx_from
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._code_bytes = 4 * dim  # bytes a face in FAISS: float32 while flat, PQ codes after
        self._ids: set[int] = set()
        self._tombstones: set[int] = set()
        # Adds and removals applied since it was built or last stored (index/lazy.py).
        self.changes = 0
        # FAISS allows concurrent searches but not a search during an add or remove.
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, face_id: int) -> bool:
        return face_id in self._ids

    @property
    def exact(self) -> bool:
        """Whether search similarities are exact (a flat index) or approximate (PQ)."""
        return isinstance(faiss.downcast_index(self._index.index), faiss.IndexFlat)

    @property
    def vector_bytes(self) -> int:
        """Bytes of the stored face codes: 4 per dimension while flat, PQ codes after."""
        with self._lock:
            return self._index.ntotal * faiss.downcast_index(self._index.index).sa_code_size()

    @property
    def memory_bytes(self) -> int:
        """What the group holds in memory: the codes and FAISS's id map (8 bytes a face), the
        id sets of live and deleted faces."""
        # Read on every search of a bounded node (index/lazy.py), for every held group: from
        # plain attributes, no lock and no call into FAISS. Tombstones stay in FAISS until
        # compact(), so FAISS holds exactly the live and deleted ids.
        faces = len(self._ids) + len(self._tombstones)
        sets = sys.getsizeof(self._ids) + sys.getsizeof(self._tombstones) + INT_BYTES * faces
        return faces * (self._code_bytes + 8) + sets

    @property
    def tombstones(self) -> int:
        return len(self._tombstones)

    def ids(self) -> set[int]:
        with self._lock:
            return set(self._ids)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        use_threads()
        with self._lock:
            fresh = np.array([i not in self._ids and i not in self._tombstones for i in ids.tolist()], dtype=bool)
            if not fresh.any():
                return
            ids, vectors = ids[fresh], vectors[fresh]
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
            self._ids.update(ids.tolist())
            self.changes += len(ids)
            if self.exact and len(self._ids) >= self.approx_from:
                self._quantise()

    def remove(self, ids: list[int]) -> None:
        """Hide the ids from searches at once; FAISS drops them at the next ``compact()``."""
        with self._lock:
            present = [i for i in ids if i in self._ids]
            self._ids.difference_update(present)
            self._tombstones.update(present)
            self.changes += len(present)
            if len(self._tombstones) > MAX_TOMBSTONES:
                self.compact()

    def compact(self) -> int:
        """Remove the tombstoned ids from FAISS; returns how many."""
        use_threads()
        with self._lock:
            if not self._tombstones:
                return 0
            removed = self._index.remove_ids(np.fromiter(self._tombstones, np.int64, len(self._tombstones)))
            self._tombstones.clear()
            return int(removed)

    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """(similarities, ids, exact) of the k nearest faces, best first; ``exact`` tells whether
        the similarities are exact (flat) or approximate (PQ, then RERANK_POOL at least) at the
        time of this search."""
        use_threads()
        with self._lock:
            exact = self.exact
            k = min(k if exact else max(k, RERANK_POOL), len(self._ids))
            if k == 0:
                return np.empty(0, np.float32), np.empty(0, np.int64), exact
            wanted = min(k + len(self._tombstones), self._index.ntotal)
            scores, ids = self._index.search(vector.reshape(1, -1).astype(np.float32), wanted)
            scores, ids = scores[0], ids[0]
            if self._tombstones:
                live = np.array([i not in self._tombstones for i in ids.tolist()], dtype=bool)
                scores, ids = scores[live], ids[live]
        return scores[:k], ids[:k], exact

    def _quantise(self) -> None:
        """Switch from the flat index to fast-scan PQ, trained on the group's own faces."""
        self.compact()
        flat = faiss.downcast_index(self._index.index)
        vectors = flat.reconstruct_n(0, flat.ntotal)
        ids = faiss.vector_to_array(self._index.id_map)
        sample = vectors[np.random.default_rng(0).permutation(len(vectors))[:TRAIN_SAMPLE]]
        quantised = faiss.index_factory(self.dim, f"PQ{self.dim // 2}x4fs", faiss.METRIC_INNER_PRODUCT)
        quantised.train(sample)
        index = faiss.IndexIDMap2(quantised)
        index.add_with_ids(vectors, ids)
        self._index = index
        self._code_bytes = quantised.sa_code_size()

    def to_bytes(self) -> tuple[np.ndarray, np.ndarray]:
        """(serialised FAISS index, live ids), tombstones compacted first: what a snapshot holds."""
        with self._lock:
            self.compact()
            return faiss.serialize_index(self._index), np.fromiter(self._ids, np.int64, len(self._ids))

    @classmethod
    def from_bytes(cls, dim: int, approx_from: int, blob: np.ndarray, ids: Optional[np.ndarray] = None) -> "GroupIndex":
        """The group ``to_bytes`` serialised; without ``ids``, those of FAISS's id map (the
        same, tombstones being compacted before serialising)."""
        group = cls(dim, approx_from)
        group._index = faiss.deserialize_index(blob)
        group._code_bytes = faiss.downcast_index(group._index.index).sa_code_size()
        if ids is None:
            ids = faiss.vector_to_array(group._index.id_map)
        group._ids = set(ids.tolist())
        return group
