"""WSGI entry point for gunicorn: ``service.wsgi:create()``."""
from __future__ import annotations

import logging

from flask import Flask

from config.defaults import load_settings
from service.app import create_app


def create() -> Flask:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return create_app(load_settings())
