"""Multi-step runs: ``pipeline.start()`` → steps (model calls and others) → ``run.submit()``.

The run owns its ``userId`` and metadata: a step may add metadata (merged into the run, the latest
write per key winning) but never set the user. ``run.openai`` is a client whose calls are steps of
the run; ``run.step(...)`` records a step that is not a model call.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from sightline.ids import new_id
from sightline.mapping import iso
from sightline.sdk import _worker
from sightline.sdk._client import AsyncClient, Client, recorder
from sightline.sdk._config import SightlineConfig
from sightline.sdk._context import current_scope
from sightline.sdk._params import InvalidParams, check_metadata, coerce_id
from sightline.sdk._record import Recorder

__all__ = ["Pipeline", "PipelineRun"]

_R = TypeVar("_R")
_USER_KEYS = ("user_id", "userId")


class Pipeline:
    """A named multi-step process whose runs are recorded together.

    ``Pipeline("compose", client=client)`` records its runs where ``client`` records; without a
    client, ``sightline=SightlineConfig(...)`` (or the environment) says where, and ``run.openai``
    is a :class:`sightline.Client` built from openai's environment variables.
    """

    def __init__(
        self,
        slug: str,
        *,
        client: Client | AsyncClient | None = None,
        sightline: SightlineConfig | None = None,
    ) -> None:
        if not isinstance(slug, str) or not slug or len(slug) > 200:
            raise InvalidParams("a pipeline needs a slug: a non-empty string of at most 200 characters")
        if client is not None and not isinstance(client, Client | AsyncClient):
            raise TypeError("Pipeline(client=...) takes a sightline.Client or sightline.AsyncClient")
        self.slug = slug
        self.client = client
        self._config = sightline
        self._recorder: Recorder | None = client._sightline if client is not None else None

    def recorder(self) -> Recorder:
        """Where this pipeline's runs are recorded."""
        if self._recorder is None:
            self._recorder = recorder((self._config or SightlineConfig()).resolved(), "")
        return self._recorder

    def start(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        user_id: str | uuid.UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
        run_id: str | uuid.UUID | None = None,
    ) -> PipelineRun:
        """Start a run. ``params`` is the dict form ``{"userId": ..., "metadata": {...}}``.

        Ids are strings or ``uuid.UUID`` objects."""
        if params is not None:
            unknown = set(params) - {"userId", "user_id", "metadata", "runId", "run_id"}
            if unknown:
                raise InvalidParams(f"pipeline.start: unknown keys {sorted(unknown)}")
            user_id = user_id or params.get("userId") or params.get("user_id")
            metadata = metadata if metadata is not None else params.get("metadata")
            run_id = run_id or params.get("runId") or params.get("run_id")
        user = coerce_id("user_id", user_id)
        if user is None:
            scope = current_scope()
            user = scope.user_id if scope is not None else None
        run = coerce_id("run_id", run_id) or new_id()[0]
        return PipelineRun(self, run, user, check_metadata(metadata))


class PipelineRun:
    """One run of a pipeline. Submit it with :meth:`submit`, or use it as a context manager."""

    def __init__(
        self, pipeline: Pipeline, run_id: str, user_id: str | None, metadata: dict[str, Any]
    ) -> None:
        if not isinstance(run_id, str) or not run_id or len(run_id) > 200:
            raise InvalidParams("run_id must be a non-empty string of at most 200 characters")
        if user_id is not None and (not isinstance(user_id, str) or not user_id or len(user_id) > 200):
            raise InvalidParams("user_id must be a non-empty string of at most 200 characters")
        self.id = run_id
        self.pipeline = pipeline
        self.user_id = user_id
        self.metadata = metadata
        self.status = "running"
        self.error: dict[str, Any] | None = None
        self._started = time.time()
        self._ended: float | None = None
        self._steps: list[dict[str, Any]] = []
        self._index = itertools.count()
        self._lock = threading.Lock()
        self._client: Client | AsyncClient | None = None
        self._send(final=False)

    # -- what calls need of their run ------------------------------------------------------

    def next_step_index(self) -> int:
        """The position of the next step (model call or not) in this run."""
        return next(self._index)

    def merge_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Merge validated metadata into the run; the latest write per key wins."""
        with self._lock:
            self.metadata.update(metadata)

    # -- the user's API ----------------------------------------------------------------------

    @property
    def openai(self) -> Any:
        """A client (like the pipeline's) whose calls are steps of this run."""
        if self._client is None:
            client = self.pipeline.client
            if client is None:
                client = Client(_sightline_recorder=self.pipeline.recorder())
            self._client = client._sightline_bind(self)
        return self._client

    def step(
        self,
        name: str,
        *,
        inputs: Any = None,
        outputs: Any = None,
        metadata: Mapping[str, Any] | None = None,
        started_at: float | None = None,
        ended_at: float | None = None,
        error: BaseException | str | None = None,
        **extra: Any,
    ) -> None:
        """Record a step that is not a model call (a retrieval, a tool, a function…).

        ``started_at``/``ended_at`` are Unix timestamps (default: now). ``metadata`` merges into
        the run. A step cannot set ``user_id``: it belongs to the run.
        """
        if any(key in extra for key in _USER_KEYS):
            raise InvalidParams(
                "a step cannot set user_id: it belongs to the run (give it to pipeline.start)",
                field="user_id",
            )
        if not isinstance(name, str) or not name or len(name) > 200:
            raise InvalidParams(
                "a step needs a name: a non-empty string of at most 200 characters", field="name"
            )
        if metadata:
            self.merge_metadata(check_metadata(metadata, where="step metadata"))
        now = time.time()
        step: dict[str, Any] = {
            **extra,
            "name": name,
            "stepIndex": self.next_step_index(),
            "inputs": inputs,
            "outputs": outputs,
            "startedAt": iso(started_at if started_at is not None else now),
            "endedAt": iso(ended_at if ended_at is not None else now),
            "status": "ok" if error is None else "error",
        }
        if error is not None:
            step["error"] = _error(error)
        with self._lock:
            self._steps.append(step)

    def measure(self, func: Callable[..., _R], *args: Any, step_name: str | None = None, **kwargs: Any) -> _R:
        """Call ``func(*args, **kwargs)`` and record it as a step with its inputs, output and timing."""
        started = time.time()
        inputs = {"args": list(args), **kwargs} if args else dict(kwargs)
        name: str = step_name or getattr(func, "__name__", None) or "step"
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            self.step(name, inputs=inputs, started_at=started, error=exc)
            raise
        self.step(name, inputs=inputs, outputs=result, started_at=started)
        return result

    def submit(self, *, error: BaseException | str | None = None) -> str:
        """Send the run (its status, end, merged metadata and steps); returns its id.

        Submitting again sends an update. Never blocks: delivery happens in the background.
        """
        self._ended = time.time()
        if error is not None:
            self.status, self.error = "error", _error(error)
        elif self.status == "running":
            self.status = "ok"
        self._send(final=True)
        return self.id

    def _send(self, *, final: bool) -> None:
        destination = self.pipeline.recorder().destination
        if destination is None:
            return
        with self._lock:
            body: dict[str, Any] = {
                "id": self.id,
                "pipelineSlug": self.pipeline.slug,
                "metadata": dict(self.metadata),
                "startedAt": iso(self._started),
                "status": self.status,
            }
            if self.user_id is not None:
                body["userId"] = self.user_id
            if final:
                body["endedAt"] = iso(self._ended or time.time())
                body["steps"] = list(self._steps)
                if self.error is not None:
                    body["error"] = self.error
        _worker.submit(destination, "run", body)

    def __enter__(self) -> PipelineRun:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.submit(error=exc)

    async def __aenter__(self) -> PipelineRun:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.submit(error=exc)


def _error(error: BaseException | str) -> dict[str, Any]:
    if isinstance(error, str):
        return {"type": "error", "message": error}
    out: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        out["statusCode"] = status
    return out
