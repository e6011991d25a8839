"""Sightline: see every call your application makes to a large language model."""

__version__ = "0.1.0"

__all__ = ["__version__"]
