"""Redis memory per face, all in: ``used_memory`` growth of a fresh embedded Redis over
``--faces`` one-face users (empty user_info) registered in one group through the library's
write path (face hash, token set, membership, user record, change-stream entry), with the
embedded Redis's settings or with Redis's default ``hash-max-ziplist-value`` (64), which turns
every face hash into a hash table.

    python -m bench.redis_memory [--faces 20000] [--out bench/results/redis_memory.json]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np

from bench.lfw import git_revision, machine_info
from bench.lfw_embeddings import RESULTS_DIR
from service.library.face_library import NewFace
from service.library.offline import offline_library
from service.store.redis_server import COMPACT_HASH_VALUE, EmbeddedRedis, connect

DIM = 640  # the fused profile's embedding
REDIS_DEFAULT_HASH_VALUE = 64


def bytes_per_face(faces: int, hash_value: int) -> float:
    with tempfile.TemporaryDirectory() as directory:
        server = EmbeddedRedis(Path(directory), "everysec").start()
        try:
            client = connect(server.url)
            client.config_set("hash-max-ziplist-value", hash_value)
            library = offline_library(client, "sface+fr_feature")
            client.set("warm", 1)
            before = client.info("memory")["used_memory"]
            vectors = np.random.default_rng(0).standard_normal((faces, DIM)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            for i, vector in enumerate(vectors):
                digest = hashlib.sha256(str(i).encode()).hexdigest()
                library.put_faces("12345678", f"user_{i:06d}", ["staff"], [NewFace(digest, vector)], "", replace=False)
            return (client.info("memory")["used_memory"] - before) / faces
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "redis_memory.json")
    args = parser.parse_args()
    results = {
        f"hash-max-ziplist-value {value}": bytes_per_face(args.faces, value)
        for value in (COMPACT_HASH_VALUE, REDIS_DEFAULT_HASH_VALUE)
    }
    report = {"benchmark": "redis_memory", "git": git_revision(), "machine": machine_info(), "faces": args.faces, "bytes_per_face": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    for setting, value in results.items():
        print(f"{setting:<28} {value:>8.0f} bytes per face")


if __name__ == "__main__":
    main()
