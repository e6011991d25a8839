"""``gentrace.OpenAI``: openai's client whose ``create`` also takes gentrace's arguments.

* ``pipeline_slug="..."`` (the simple SDK): the call is one run of that pipeline, with the user and
  metadata of ``gentrace={"userId": ..., "metadata": {...}}``.
* In a pipeline run (``runner.get_openai()``), each call is a step of the run; ``gentrace=`` may add
  metadata to the run but not a userId (:class:`UserIdOnStepError`).
* Chat messages may carry ``contentTemplate`` + ``contentInputs`` (mustache), and completions
  ``prompt_template`` + ``prompt_inputs``: the model is sent the rendered text, the template is recorded.
* openai 0.x's spelling, which gentrace's documents use, works too: ``openai.ChatCompletion.create(...)``,
  ``openai.Completion.create(...)``, ``openai.Embedding.create(...)``.

Every call is recorded by a :class:`sightline.Client` (one recording path); everything else about the
client (``models``, ``with_options``, ...) is that client's.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any, Protocol

from sightline.compat.gentrace._config import sightline_config
from sightline.compat.gentrace._context import Context, check_context, refuse_step_user
from sightline.compat.gentrace_wire import render_mustache
from sightline.sdk import CallParams, Client, InvalidParams, Pipeline

__all__ = ["OpenAI", "resource"]

CHAT, COMPLETION, EMBEDDING = "chat", "completion", "embedding"


class Runner(Protocol):
    """What a client needs of the pipeline run its calls are steps of."""

    def _stepped(self, ended: float) -> None: ...


def resource(client: Client, kind: str) -> Any:
    """The ``create`` owner of ``client`` for a kind of call."""
    if kind == CHAT:
        return client.chat.completions
    if kind == COMPLETION:
        return client.completions
    return client.embeddings


def _params(context: Context, kwargs: dict[str, Any], *, run_step: bool) -> CallParams | None:
    """The Sightline parameters of one call; renders a completion's ``prompt_template`` into ``kwargs``."""
    template = kwargs.pop("prompt_template", None)
    inputs = kwargs.pop("prompt_inputs", None)
    extra: dict[str, Any] = {}
    if template is not None:
        if not isinstance(template, str) or (inputs is not None and not isinstance(inputs, Mapping)):
            raise InvalidParams(
                "prompt_template must be a string and prompt_inputs a dict", field="prompt_template"
            )
        values = dict(inputs or {})
        kwargs["prompt"] = render_mustache(template, values)
        extra = {"template_text": template, "template_params": values}
    user = None if run_step else context.user_id
    if user is None and not context.metadata and not extra:
        return None
    return CallParams(user_id=user, metadata=context.metadata or None, **extra)


class _Create:
    """One of openai's ``create`` methods, taking gentrace's ``gentrace=`` and ``pipeline_slug=`` too."""

    def __init__(self, client: OpenAI, kind: str) -> None:
        self._client = client
        self._kind = kind

    def create(self, *, gentrace: Any = None, pipeline_slug: str | None = None, **kwargs: Any) -> Any:
        """openai's ``create`` (same arguments, same answer), recorded in Sightline."""
        return self._client._gentrace_create(self._kind, kwargs, gentrace, pipeline_slug)

    def __getattr__(self, name: str) -> Any:
        # everything but create (with_raw_response, parse, ...) is the Sightline client's own
        return getattr(resource(self._client._sightline_client, self._kind), name)


class _Chat:
    def __init__(self, client: OpenAI) -> None:
        self.completions = _Create(client, CHAT)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.completions._client._sightline_client.chat, name)


class OpenAI:
    """``openai.OpenAI`` as gentrace's simple SDK gives it: ``OpenAI(api_key=..., base_url=...)``.

    Takes openai's arguments; Sightline's key and server come from :func:`gentrace.init` (or the
    environment). Without ``pipeline_slug=`` a call is recorded on its own.
    """

    def __init__(
        self, *args: Any, _client: Client | None = None, _runner: Runner | None = None, **kwargs: Any
    ):
        self._sightline_client = (
            _client if _client is not None else Client(*args, sightline=sightline_config(), **kwargs)
        )
        self._runner = _runner
        self.chat = _Chat(self)
        self.completions = _Create(self, COMPLETION)
        self.embeddings = _Create(self, EMBEDDING)
        # openai 0.x's module-level names, as gentrace's documents call them
        self.ChatCompletion = self.chat.completions  # noqa: N815
        self.Completion = self.completions  # noqa: N815
        self.Embedding = self.embeddings  # noqa: N815

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sightline_client, name)

    def _gentrace_create(self, kind: str, kwargs: dict[str, Any], gentrace: Any, slug: str | None) -> Any:
        runner = self._runner
        context = check_context(gentrace, "gentrace")
        if runner is not None:  # a step of a run: pipeline_slug is the run's, as in gentrace
            refuse_step_user(context)
            params = _params(context, kwargs, run_step=True)
            try:
                return resource(self._sightline_client, kind).create(sightline=params, **kwargs)
            finally:
                runner._stepped(time.time())
        if slug is None:
            params = _params(context, kwargs, run_step=False)
            return resource(self._sightline_client, kind).create(sightline=params, **kwargs)
        # the simple SDK: one run of the pipeline per call
        run = Pipeline(slug, client=self._sightline_client).start(
            user_id=context.user_id, metadata=context.metadata or None
        )
        params = _params(Context(), kwargs, run_step=True)  # the user and metadata are the run's
        try:
            result = resource(run.openai, kind).create(sightline=params, **kwargs)
        except BaseException as exc:
            run.submit(error=exc)
            raise
        run.submit()
        with contextlib.suppress(AttributeError, TypeError, ValueError):
            setattr(result, "pipelineRunId", run.id)  # noqa: B010 - as gentrace sets it on the answer
        return result
