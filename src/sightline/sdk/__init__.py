"""The Sightline SDK: a drop-in openai client that records every generation.

Importing this package starts nothing: the exporter thread starts with the first recorded call.
It imports only ``openai``, ``httpx``, ``pydantic``, the standard library and the leaves beside it
(``sightline.schema``, ``errors``, ``ids``, ``feedback_key``, ``templating``, ``mapping``).
"""

from __future__ import annotations

from sightline.sdk._client import AsyncClient, Client
from sightline.sdk._config import SightlineConfig
from sightline.sdk._context import context
from sightline.sdk._params import CallParams, InvalidParams
from sightline.sdk._pipeline import Pipeline, PipelineRun
from sightline.sdk._streams import AsyncRecordingStream, RecordingStream
from sightline.sdk._templates import TemplateChat, TemplateText
from sightline.sdk._worker import Stats, flush, stats

__all__ = [
    "AsyncClient",
    "AsyncRecordingStream",
    "CallParams",
    "Client",
    "InvalidParams",
    "Pipeline",
    "PipelineRun",
    "RecordingStream",
    "SightlineConfig",
    "Stats",
    "TemplateChat",
    "TemplateText",
    "context",
    "flush",
    "stats",
]
