"""Shoal: a self-hosted Azure Machine Learning v2 workspace."""

__version__ = "0.1.0"
