"""Groups' built indexes kept in Redis beside their faces, so that any node loads a large group
without training or quantising it again (index/lazy.py).

A built index is a serialised FAISS index (fast-scan PQ codes and their codebooks: ~170 bytes a
face) with the change-stream position it includes. Its bytes are split into chunks of
CHUNK_BYTES, each its own key, so no single command moves tens of megabytes; the chunks of a
new version go under a fresh generation, then one script points the group's record at them,
unless the record already holds a newer position (two nodes storing the same group: the newest
wins). The replaced chunks are deleted after; a reader that finds one missing reads again.
Every key carries the app's hash tag: one cluster slot with the app's faces.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Optional

import numpy as np

from index.snapshot import stream_key
from service.store import keys
from service.store.redis_server import RedisClient

log = logging.getLogger(__name__)
CHUNK_BYTES = 4 * 1024 * 1024
# Reads retried when a newer version replaced the chunks being read.
READ_TRIES = 3

# KEYS[1]: the group's record. ARGV: generation, chunks, position (ms, seq), bytes.
# Returns {1, old generation, old chunks} when stored, {0} when the record is newer.
_POINT = """
local old = redis.call('HMGET', KEYS[1], 'gen', 'chunks', 'ms', 'seq')
if old[1] then
  local ms, seq = tonumber(old[3]), tonumber(old[4])
  if ms > tonumber(ARGV[3]) or (ms == tonumber(ARGV[3]) and seq > tonumber(ARGV[4])) then
    return {0}
  end
end
redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'chunks', ARGV[2], 'ms', ARGV[3], 'seq', ARGV[4], 'bytes', ARGV[5])
return {1, old[1] or '', old[2] or '0'}
"""


@dataclass(frozen=True)
class Built:
    blob: np.ndarray  # uint8, what faiss.serialize_index gives
    position: str  # the app's change-stream position the index includes


class BuiltIndexStore:
    """The built indexes of one embedding model's groups."""

    def __init__(self, client: RedisClient, model_id: str) -> None:
        self.redis = client
        self.model_id = model_id
        self._point = client.register_script(_POINT)

    def get(self, app: str, group: str) -> Optional[Built]:
        """The group's stored index, or None when it has none."""
        record_key = keys.built_index(app, self.model_id, group)
        for _ in range(READ_TRIES):
            record = self.redis.hgetall(record_key)
            if not record:
                return None
            generation, chunks = record[b"gen"].decode(), int(record[b"chunks"])
            with self.redis.pipeline(transaction=False) as pipe:
                for number in range(chunks):
                    pipe.get(keys.built_chunk(app, self.model_id, group, generation, number))
                parts = pipe.execute()
            if all(part is not None for part in parts):
                position = f"{int(record[b'ms'])}-{int(record[b'seq'])}"
                return Built(np.frombuffer(b"".join(parts), np.uint8), position)
        log.warning("built index of %s/%s kept changing while read; rebuilding", app, group)
        return None

    def put(self, app: str, group: str, blob: np.ndarray, position: str) -> bool:
        """Store the group's index built up to ``position``; False when a newer one is stored."""
        generation, data = secrets.token_hex(4), blob.tobytes()
        chunks = max(1, -(-len(data) // CHUNK_BYTES))
        names = [keys.built_chunk(app, self.model_id, group, generation, n) for n in range(chunks)]
        with self.redis.pipeline(transaction=False) as pipe:
            for number, name in enumerate(names):
                pipe.set(name, data[number * CHUNK_BYTES : (number + 1) * CHUNK_BYTES])
            pipe.execute()
        ms, seq = stream_key(position)
        answer = self._point(keys=[keys.built_index(app, self.model_id, group)], args=[generation, chunks, ms, seq, len(data)])
        if answer[0] == 0:
            self.redis.delete(*names)
            return False
        old_generation, old_chunks = answer[1].decode() if isinstance(answer[1], bytes) else answer[1], int(answer[2])
        if old_generation:
            self.redis.delete(*(keys.built_chunk(app, self.model_id, group, old_generation, n) for n in range(old_chunks)))
        return True

    def drop(self, app: str, group: str) -> None:
        """Forget the group's stored index: the group was deleted, and a 300k-face index is
        ~50 MB of Redis. (A node storing the same group at that very moment may leave its new
        chunks behind; a later store of a group of that name replaces them.)"""
        record_key = keys.built_index(app, self.model_id, group)
        generation, chunks = self.redis.hmget(record_key, "gen", "chunks")
        names = [keys.built_chunk(app, self.model_id, group, generation.decode(), n) for n in range(int(chunks))] if generation else []
        self.redis.delete(record_key, *names)
