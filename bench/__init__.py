"""Benchmarks and calibration on the shared face data sets; run as ``python -m bench.<name>``."""
