"""Redis round trips and bytes read per identify, through the whole endpoint (token check,
quotas, library, index), in-process with the Flask test client.

Run against a Redis that already holds a large group, e.g. the one ``bench/load.py`` fills
(var/bench-load/<profile>/redis): start ``redis-server`` on that folder's AOF, then

    python -m bench.redis_io --redis-url redis://127.0.0.1:6390/0 [--probes 200]

Round trips are counted at the client (every command or pipeline sent is one), bytes as the
server's ``total_net_output_bytes`` grows (this process is its only client meanwhile).
"""
from __future__ import annotations

import argparse
import base64
import json
import tempfile
import threading
from pathlib import Path

import numpy as np
import redis

from bench.lfw import git_revision, machine_info
from bench.lfw_embeddings import LFW_DIR, RESULTS_DIR
from bench.load import GROUP, gallery_and_probes
from config.defaults import load_settings
from service.app import create_app


class RoundTrips:
    """Counts what redis-py sends from this thread (the request's; the index follower's reads
    run in their own): one ``send_packed_command`` per command or pipeline."""

    def __init__(self) -> None:
        self.count = 0
        self._send = redis.connection.AbstractConnection.send_packed_command
        thread = threading.get_ident()
        counter = self

        def counted(connection, command, check_health=True):
            if threading.get_ident() == thread:
                counter.count += 1
            return counter._send(connection, command, check_health)

        redis.connection.AbstractConnection.send_packed_command = counted


def output_bytes(client: redis.Redis) -> int:
    return int(client.info("stats")["total_net_output_bytes"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--profile", default="fused")
    parser.add_argument("--faces", type=int, default=300_000, help="the group's size, to pick the probes load.py kept out")
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "redis_io.json")
    args = parser.parse_args()

    _, _, probes = gallery_and_probes(args.profile, args.faces)
    probes = probes[: args.probes]
    with tempfile.TemporaryDirectory() as data_dir:
        settings = load_settings(redis_url=args.redis_url, data_dir=Path(data_dir), models_dir=Path("var/models"))
        app = create_app(settings)
        try:
            services = app.extensions["facesvc"]
            # Another key pair of the app load.py filled (the only app of that Redis).
            keys = services.auth.create_keys(services.auth.list_keys()[0].app_id)
            token = services.auth.issue_token(keys.api_key, keys.secret_key)["access_token"]
            client, probe_client = app.test_client(), redis.Redis.from_url(args.redis_url)
            trips, read = [], []
            counter = RoundTrips()
            # Each reading's delta includes the previous INFO answer: two back to back measure it.
            info_bytes = -output_bytes(probe_client) + output_bytes(probe_client)
            for path in probes:
                image = base64.b64encode((LFW_DIR / path).read_bytes()).decode()
                before_bytes = output_bytes(probe_client)
                before_trips = counter.count
                answer = client.post(f"/rest/2.0/face/v2/identify?access_token={token}", data={"group_id": GROUP, "image": image, "user_top_num": 1}).get_json()
                trips.append(counter.count - before_trips)
                read.append(output_bytes(probe_client) - before_bytes - info_bytes)
                if "error_code" in answer and answer["error_code"] != 216402:
                    raise RuntimeError(f"identify failed: {answer}")
        finally:
            app.extensions["facesvc"].close()
    report = {
        "benchmark": "redis_io",
        "git": git_revision(),
        "machine": machine_info(),
        "config": {"profile": args.profile, "faces": args.faces, "probes": len(probes)},
        "round_trips_per_identify": float(np.median(trips)),
        "bytes_read_per_identify": float(np.median(read)),
        "bytes_read_mean": float(np.mean(read)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"identify at {args.faces} faces: {report['round_trips_per_identify']:.0f} Redis round trips, "
          f"{report['bytes_read_per_identify'] / 1024:.1f} KiB read (median of {len(probes)})")


if __name__ == "__main__":
    main()
