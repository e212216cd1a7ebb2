"""Settings for facesvc: one typed object, read once at start-up and passed down."""
from config.defaults import Settings, load_settings

__all__ = ["Settings", "load_settings"]
