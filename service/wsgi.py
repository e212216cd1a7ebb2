"""WSGI entry point for gunicorn: ``service.wsgi:create()``."""
from __future__ import annotations

from flask import Flask

from config.defaults import load_settings
from service.app import create_app
from service.ops.files import restrict_new_files
from service.ops.logs import configure_logging


def create() -> Flask:
    restrict_new_files()
    settings = load_settings()
    configure_logging(settings.log_format, capture_native=True)
    return create_app(settings)
