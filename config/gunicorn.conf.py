"""gunicorn server knobs, taken from the facesvc settings (FACESVC_BIND, _WORKERS, ...).

Models are loaded in each worker after the fork (no preload): ONNX Runtime's thread pools do
not survive a fork, and each worker owns its sessions.
"""
from config.defaults import load_settings

_settings = load_settings()

bind = _settings.bind
workers = _settings.workers
threads = _settings.threads
worker_class = "gthread"
# The request deadline: a request stuck longer than this gets its worker restarted.
timeout = _settings.timeout
graceful_timeout = 30
keepalive = 5
preload_app = False
accesslog = None  # facesvc logs one line per request itself, with log_id and error code
wsgi_app = "service.wsgi:create()"
