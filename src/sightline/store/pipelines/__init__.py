"""Pipelines and the function registry. Reads take a connection; writes are operations for the single
writer, each with its audit row."""

from __future__ import annotations

from .registry import Synced, SyncFunctions, list_functions, registered_function
from .saved import SavedPipeline, SavePipeline, get_pipeline, list_pipelines

__all__ = [
    "SavePipeline",
    "SavedPipeline",
    "SyncFunctions",
    "Synced",
    "get_pipeline",
    "list_functions",
    "list_pipelines",
    "registered_function",
]
