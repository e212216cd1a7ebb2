"""gunicorn server knobs, taken from the facesvc settings (FACESVC_BIND, _WORKERS, ...).

Models are loaded in each worker after the fork (no preload): ONNX Runtime's thread pools do
not survive a fork, and each worker owns its sessions and indexes.

Processes, not threads, carry the load (FACESVC_WORKERS=2, FACESVC_THREADS=2 on 2 cores):
identify at 8 clients against 30k faces (bench/load.py, while SFace still ran on ONNX Runtime)
gave 45 req/s with 2 workers x 2 threads, 26 with 1 x 4 (the GIL: decode, base64, JSON and
Flask are Python) and 37 with 2 x 4 (more requests in flight than cores only queue). A batch
(workers/batcher.py) gathers the requests of one worker's threads only, so a GPU deployment that
batches wants more threads per worker than these CPU defaults. A worker holds ~550 MB with the fused models
(an OpenCV copy of each embedder per busy thread) and a 300k-face index, so one worker per core is the default; on a small machine 1 x 4 saves
one copy at a 40 % cost in throughput.
"""
import os

from config.defaults import load_settings

_settings = load_settings()

bind = _settings.bind
workers = _settings.workers
threads = _settings.threads
# gthread with each request read in full by the event loop before a thread sees it, so slow or
# idle clients hold no thread (service/ops/buffering_worker.py).
worker_class = "service.ops.buffering_worker.BufferingWorker"
# The request deadline: a request stuck longer than this gets its worker restarted.
timeout = _settings.timeout
graceful_timeout = 30
# A worker takes a connection only when one of its threads is free, and closes it after the
# answer: waiting requests queue in the kernel's accept queue, which every worker drains, and
# not behind a busy worker's threads. Keep-alive connections would pin each client to the
# worker that accepted it; at 8 clients on 2 x 2 threads that imbalance doubled the p99.
worker_connections = threads
keepalive = 0
preload_app = False
# gunicorn's control socket (gunicornc: worker counts, reload, shutdown) is not used by facesvc;
# left on, it is one more way in, under the home directory.
control_socket_disable = True
accesslog = None  # facesvc logs one line per request itself, with log_id and error code
wsgi_app = "service.wsgi:create()"
if _settings.log_format == "json":
    # gunicorn's own lines (boot, worker exits) in the same JSON as facesvc's.
    _json_stderr = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "service.ops.logs.JsonFormatter"}},
        "handlers": {"console": _json_stderr, "error_console": _json_stderr},
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False}},
    }


def worker_exit(server, worker) -> None:
    """Stop the index sync in the exiting worker, which writes its last index snapshot, so the
    next start replays nothing."""
    app = getattr(worker, "wsgi", None)
    services = getattr(app, "extensions", {}).get("facesvc")
    if services is not None:
        services.close()


def child_exit(server, worker) -> None:
    """Tell Prometheus a worker is gone, so its live gauges stop counting (its counters stay
    in the sum)."""
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
