"""``gentrace.Pipeline`` and its runs (the "advanced SDK"), as thin names over :class:`sightline.Pipeline`.

``pipeline.start({"userId", "metadata"})`` starts a Sightline pipeline run; ``runner.get_openai()`` (or
``runner.openai``) is a client whose calls are steps of it; ``runner.measure(func, **kwargs)`` and
``runner.checkpoint({...})`` record steps that are not model calls; ``runner.submit()`` sends the run.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from sightline.compat.gentrace._config import sightline_config
from sightline.compat.gentrace._context import check_context, refuse_step_user
from sightline.compat.gentrace._openai import OpenAI
from sightline.sdk import Client, InvalidParams, flush
from sightline.sdk import Pipeline as SightlinePipeline

__all__ = ["Pipeline", "PipelineRun"]

_R = TypeVar("_R")
_WAIT_SECONDS = 10.0  # how long submit(wait_for_server=True) waits for the records to be sent


class Pipeline:
    """A gentrace pipeline: ``Pipeline("compose", openai_config={"api_key": ...})``.

    ``openai_config`` holds openai's client arguments (``api_key``, ``base_url``, ...); ``api_key`` and
    ``host`` (deprecated in gentrace, as here) override :func:`gentrace.init` for this pipeline.
    """

    def __init__(
        self,
        slug: str | None = None,
        id: str | None = None,  # noqa: A002 - gentrace's deprecated name of the slug
        api_key: str | None = None,
        host: str | None = None,
        openai_config: Mapping[str, Any] | None = None,
        pinecone_config: Mapping[str, Any] | None = None,
    ) -> None:
        name = slug or id
        if not isinstance(name, str) or not name:
            raise InvalidParams(
                "a pipeline needs a slug: gentrace.Pipeline('my-pipeline', ...)", field="slug"
            )
        if pinecone_config is not None:
            raise InvalidParams("pinecone_config is not supported by Sightline", field="pinecone_config")
        self.slug = self.id = name
        self.openai_config = dict(openai_config) if openai_config is not None else None
        self._client = Client(sightline=sightline_config(api_key, host), **(self.openai_config or {}))
        self._pipeline = SightlinePipeline(name, client=self._client)

    def setup(self) -> None:
        """Nothing to set up (gentrace's handlers are made here when the pipeline is)."""

    def start(self, context: Mapping[str, Any] | None = None) -> PipelineRun:
        """Start a run; ``context`` is ``{"userId": ..., "metadata": {...}}`` (both optional)."""
        return PipelineRun(self, context=context)


class PipelineRun:
    """One run of a pipeline (gentrace's "runner")."""

    def __init__(self, pipeline: Pipeline, id: str | None = None, context: Mapping[str, Any] | None = None):  # noqa: A002
        checked = check_context(context, "pipeline.start")
        self.pipeline = pipeline
        self.context: dict[str, Any] = dict(context or {})
        self._run = pipeline._pipeline.start(
            user_id=checked.user_id, metadata=checked.metadata or None, run_id=id
        )
        self._last_end: float | None = None
        self._openai: OpenAI | None = None

    @property
    def pipeline_run_id(self) -> str:
        """The run's id (what ``submit`` answers as ``pipelineRunId``)."""
        return self._run.id

    def get_id(self) -> str:
        """The run's id."""
        return self._run.id

    def get_pipeline(self) -> Pipeline:
        """The pipeline this run belongs to."""
        return self.pipeline

    def get_openai(self, asynchronous: bool = False) -> OpenAI:
        """The client whose calls are steps of this run (one per run)."""
        if asynchronous:
            raise InvalidParams(
                "get_openai(asynchronous=True) is not supported: use the synchronous client",
                field="asynchronous",
            )
        if self._openai is None:
            self._openai = OpenAI(_client=self._run.openai, _runner=self)
        return self._openai

    @property
    def openai(self) -> OpenAI:
        """``runner.openai``: the same as :meth:`get_openai`."""
        return self.get_openai()

    def _stepped(self, ended: float) -> None:
        self._last_end = ended

    def _step(
        self,
        info: Mapping[str, Any],
        name: str,
        inputs: Any,
        outputs: Any,
        started: float,
        ended: float,
        error: BaseException | None = None,
    ) -> None:
        context = check_context(info.get("context"), "step_info.context")
        refuse_step_user(context)
        extra: dict[str, Any] = {"providerName": info.get("provider", "undeclared")}
        params = info.get("modelParams", info.get("model_params"))
        if params:
            extra["modelParams"] = params
        self._run.step(
            info.get("invocation") or name,
            inputs=inputs,
            outputs=outputs,
            metadata=context.metadata or None,
            started_at=started,
            ended_at=ended,
            error=error,
            **extra,
        )
        self._last_end = ended

    def measure(self, func: Callable[..., _R], **kwargs: Any) -> _R:
        """Call ``func(**kwargs)`` and record it as a step (``step_info={"provider", "invocation", ...}``
        describes the step and is not passed on). Returns what ``func`` returns."""
        info = _step_info(kwargs.pop("step_info", None))
        name = getattr(func, "__name__", None) or "measure"
        started = time.time()
        try:
            outputs = func(**kwargs)
        except Exception as exc:
            self._step(info, name, kwargs, None, started, time.time(), exc)
            raise
        self._step(
            info,
            name,
            kwargs,
            outputs if isinstance(outputs, dict) else {"value": outputs},
            started,
            time.time(),
        )
        return outputs

    async def ameasure(self, func: Callable[..., Awaitable[_R]], **kwargs: Any) -> _R:
        """:meth:`measure` for a coroutine function."""
        info = _step_info(kwargs.pop("step_info", None))
        name = getattr(func, "__name__", None) or "measure"
        started = time.time()
        try:
            outputs = await func(**kwargs)
        except Exception as exc:
            self._step(info, name, kwargs, None, started, time.time(), exc)
            raise
        self._step(
            info,
            name,
            kwargs,
            outputs if isinstance(outputs, dict) else {"value": outputs},
            started,
            time.time(),
        )
        return outputs

    def checkpoint(self, step_info: Mapping[str, Any]) -> None:
        """Record a step from ``{"inputs", "outputs", "provider"?, "invocation"?, "modelParams"?}``; it
        started when the step before it ended (or now, for the first)."""
        info = _step_info(step_info)
        now = time.time()
        started = self._last_end if self._last_end is not None else now
        self._step(info, "checkpoint", info.get("inputs", {}), info.get("outputs", {}), started, now)

    def submit(self, wait_for_server: bool = False) -> dict[str, Any]:
        """Send the run; ``{"pipelineRunId": id}``. ``wait_for_server=True`` waits until it is sent."""
        self._run.submit()
        if wait_for_server:
            flush(_WAIT_SECONDS)
        return {"pipelineRunId": self._run.id}

    async def asubmit(self) -> dict[str, Any]:
        """:meth:`submit`, for async code (it never blocks)."""
        return self.submit()


def _step_info(raw: Any) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidParams(
            "step_info: expected a dict such as {'invocation': 'retrieve'}", field="step_info"
        )
    return raw
