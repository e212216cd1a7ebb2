"""Inference: model files, detection, alignment and embedding. Knows arrays, not HTTP or Redis."""
