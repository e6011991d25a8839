"""Code written for gentrace-py 0.x, recorded in Sightline by changing its import line.

``import gentrace`` becomes ``from sightline.compat import gentrace``; the rest of the program stays::

    gentrace.init(api_key=SIGHTLINE_KEY, host="http://HOST:PORT/api")
    pipeline = gentrace.Pipeline("compose", openai_config={"api_key": OPENAI_KEY})
    runner = pipeline.start({"userId": "TWFuIGlzIGRpc3Rpbmd1aXNoZW", "metadata": {...}})
    openai = runner.get_openai()
    openai.chat.completions.create(messages=[...], model="gpt-4o-mini")
    runner.submit()

These are thin names over the Sightline SDK (:class:`sightline.Pipeline`, :class:`sightline.Client`):
one recording path, a background exporter, a flush at exit with a deadline. The Sightline server is
``init(host=...)`` or ``SIGHTLINE_SERVER_URL``; the key ``init(api_key=...)``, ``GENTRACE_API_KEY`` or
``SIGHTLINE_API_KEY``. Errors::

    sightline.sdk.InvalidParams (a ValueError)
     ├── UserIdOnStepError   a step of a run set userId (it belongs to the run)
     └── MetadataError       metadata not typed as the Metadata document says
"""

from __future__ import annotations

from sightline.compat.gentrace._config import deinit, init
from sightline.compat.gentrace._context import MetadataError, UserIdOnStepError
from sightline.compat.gentrace._openai import OpenAI
from sightline.compat.gentrace._pipeline import Pipeline, PipelineRun
from sightline.sdk import flush as _flush

__all__ = [
    "MetadataError",
    "OpenAI",
    "Pipeline",
    "PipelineRun",
    "UserIdOnStepError",
    "deinit",
    "flush",
    "init",
]


def flush(timeout: float | None = 10.0) -> bool:
    """Send every run and call recorded so far; True when all were sent within ``timeout`` seconds."""
    return _flush(timeout)
