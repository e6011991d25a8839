"""Sightline: see every call your application makes to a large language model.

The public SDK lives here: ``sightline.Client``/``AsyncClient`` (drop-in openai clients),
``SightlineConfig``, ``CallParams``, ``TemplateChat``/``TemplateText``, ``context``, ``Pipeline``,
``flush`` and ``stats``. Names are loaded on first use, so ``import sightline`` (or
``import sightline.schema`` on the server) does not import openai, and has no side effects.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from sightline.sdk import (
        AsyncClient,
        AsyncRecordingStream,
        CallParams,
        Client,
        InvalidParams,
        Pipeline,
        PipelineRun,
        RecordingStream,
        SightlineConfig,
        Stats,
        TemplateChat,
        TemplateText,
        context,
        flush,
        stats,
    )

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
    "__version__",
    "context",
    "flush",
    "stats",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        value = getattr(importlib.import_module("sightline.sdk"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sightline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
