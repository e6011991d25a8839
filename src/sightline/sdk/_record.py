"""What the caller's thread does for one call: a little bookkeeping and a non-blocking enqueue.

:meth:`Recorder.begin` renders templates (they must be rendered before openai sends them), checks the
Sightline arguments and returns a :class:`Call` holding references only: timestamps, the request
as given, the response. Everything else (the wire body, redaction, JSON) is the exporter's job.

This module knows neither streams nor how records are encoded: the client wraps streams
(:mod:`._streams`) and sets the exporter up with its encoder (:mod:`._encode`); a finished call is
handed to the exporter as it is (``_worker.submit(destination, "generation", call)``).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol

from sightline.ids import new_id
from sightline.mapping import iso
from sightline.sdk import _worker
from sightline.sdk._config import Destination, SightlineConfig
from sightline.sdk._context import Scope, current_scope
from sightline.sdk._guard import report_internal_error
from sightline.sdk._params import CallParams, InvalidParams, coerce_call_params
from sightline.sdk._signing import signer_for
from sightline.sdk._templates import (
    TemplateChat,
    TemplateInfo,
    TemplateText,
    has_content_templates,
    render_chat,
    render_content_templates,
    render_text,
)

__all__ = ["FEEDBACK_KEY", "GENERATION_ID", "Call", "Recorder", "RunLike", "annotate"]

CHAT, COMPLETION, EMBEDDING = "chat", "completion", "embedding"
# What every response (and every chunk of a stream) carries in its ``model_extra``.
FEEDBACK_KEY = "sightline_feedback_key"
GENERATION_ID = "sightline_generation_id"


class RunLike(Protocol):
    """What a call needs of the pipeline run it is a step of."""

    id: str

    def next_step_index(self) -> int: ...

    def merge_metadata(self, metadata: Mapping[str, Any]) -> None: ...


def annotate(obj: Any, call: Call) -> None:
    """Put the call's generation id and feedback key in a response's (or a chunk's) ``model_extra``."""
    extra = getattr(obj, "__pydantic_extra__", None)
    if extra is None:
        object.__setattr__(
            obj, "__pydantic_extra__", {GENERATION_ID: call.id, FEEDBACK_KEY: call.feedback_key}
        )
    else:
        extra[GENERATION_ID] = call.id
        extra[FEEDBACK_KEY] = call.feedback_key


class Call:
    """One model call in flight or finished: references and timestamps, nothing computed."""

    __slots__ = (
        "recorder",
        "kind",
        "id",
        "id_bytes",
        "wall",
        "started",
        "ended",
        "first",
        "request",
        "template",
        "params",
        "scope",
        "run_id",
        "run_owned",
        "step_index",
        "provider",
        "result",
        "chunks",
        "request_id",
        "error",
        "outcome",
        "hide_usage",
        "feedback_key",
        "sent",
        "done",
    )

    def __init__(
        self,
        recorder: Recorder,
        kind: str,
        call_id: tuple[str, bytes],
        request: dict[str, Any],
        template: TemplateInfo | None,
        params: CallParams | None,
        run_id: str | None,
        run_owned: bool,
        step_index: int | None,
        hide_usage: bool,
    ) -> None:
        self.recorder = recorder
        self.kind = kind
        self.id, self.id_bytes = call_id  # the UUID's text and its 16 bytes
        self.request = request
        self.template = template
        self.params = params
        self.scope: Scope | None = current_scope()
        self.run_id = run_id
        self.run_owned = run_owned
        self.step_index = step_index
        self.provider = recorder.provider
        self.hide_usage = hide_usage
        self.result: Any = None
        self.chunks: list[Any] | None = None
        self.request_id: str | None = None
        self.error: BaseException | None = None
        self.outcome = "ok"
        self.first: float | None = None
        self.ended: float | None = None
        self.feedback_key = ""
        self.sent = False  # the client set it when openai sent the request
        self.done = False
        self.wall = time.time()
        self.started = time.perf_counter()

    def failed(self, exc: BaseException) -> None:
        """The call raised: record it as an error if it was sent (the caller re-raises ``exc``).

        A call that failed before openai sent anything (an unknown keyword, a missing argument)
        never reached a model: it is no generation.
        """
        self.ended = time.perf_counter()
        if not self.sent:
            return
        try:
            self.error = exc
            self.outcome = "error"
            self._submit()
        except Exception as bug:
            report_internal_error("recording a failed call", bug)

    def sign(self) -> str:
        """The feedback key of this call (signed once)."""
        if not self.feedback_key:
            self.feedback_key = self.recorder.signer.sign(self.id_bytes)
        return self.feedback_key

    def succeeded(self, result: Any) -> Any:
        """The upstream answered (not a stream): record the response. Returns what the caller gets."""
        ended = time.perf_counter()
        try:
            self.sign()
            self.ended = ended
            self.result = _parsed(result)
            if self.result is not None:
                annotate(self.result, self)
            self._submit()
        except Exception as bug:
            report_internal_error("recording a call", bug)
        return result

    def finish_stream(self, outcome: str, exc: BaseException | None = None) -> None:
        """A recorded stream ended (``ok``), failed (``error``) or was left early (``incomplete``)."""
        if self.done:
            return
        if self.ended is None:
            self.ended = time.perf_counter()
        if outcome == "incomplete" and _all_finished(self.chunks):
            outcome = "ok"
        self.outcome = outcome
        self.error = exc
        self._submit()

    def _submit(self) -> None:
        self.done = True
        destination = self.recorder.destination
        if destination is not None:
            if self.run_id is not None and self.recorder.run is None:
                self.recorder.announce_chain(self)
            _worker.submit(destination, "generation", self)


def _all_finished(chunks: list[Any] | None) -> bool:
    """Whether every choice of a stream already had its finish reason (so nothing was cut off)."""
    open_choices: set[int] = set()
    finished: set[int] = set()
    for chunk in chunks or ():
        for choice in getattr(chunk, "choices", None) or ():
            open_choices.add(choice.index)
            if getattr(choice, "finish_reason", None):
                finished.add(choice.index)
    return bool(open_choices) and open_choices <= finished


def _parsed(result: Any) -> Any:
    """The response object behind ``result`` (a ``with_raw_response`` result is parsed; it caches)."""
    if not _is_raw(type(result)):
        return result
    if getattr(result, "_stream", False) or not getattr(result, "is_closed", True):
        return None
    return result.parse()


# Whether a type is a raw response (one with ``parse`` and ``http_request``), known once per type: a
# missing attribute of a pydantic response goes through its ``__getattr__`` and an exception (~5 µs).
_RAW: dict[type, bool] = {}


def _is_raw(kind: type) -> bool:
    raw = _RAW.get(kind)
    if raw is None:
        raw = _RAW[kind] = callable(getattr(kind, "parse", None)) and hasattr(kind, "http_request")
    return raw


def _provider(base_url: str) -> str | None:
    if "api.openai.com" in base_url:
        return "openai"
    if "openai.azure.com" in base_url:
        return "azure"
    return None


class Recorder:
    """The Sightline side of one client: its configuration and, for ``run.openai``, its run."""

    def __init__(self, config: SightlineConfig, base_url: str, run: RunLike | None = None) -> None:
        self.config = config
        self.enabled = config.records
        self.destination: Destination | None = config.destination() if self.enabled else None
        self.api_key = config.api_key or ""
        server_url = self.destination.server_url if self.destination is not None else None
        self.signer = signer_for(server_url, self.api_key)
        self.provider = _provider(base_url)
        self.run = run
        self._chains: OrderedDict[str, None] = OrderedDict()

    def bound(self, run: RunLike, base_url: str) -> Recorder:
        """A recorder whose calls are steps of ``run``."""
        return Recorder(self.config, base_url, run)

    def begin(self, kind: str, kwargs: dict[str, Any], sightline: Any) -> Call | None:
        """Prepare a call: render templates into ``kwargs``; None when this call is not recorded.

        Raises :class:`InvalidParams` for a malformed Sightline argument: the call is not made.
        """
        params = coerce_call_params(sightline)
        template = _render(kind, kwargs, params)
        if not self.enabled:
            return None
        self.signer.start()  # the signing key comes while the model answers (once per process)
        run = self.run
        name = (
            (params.prompt_template_name if params else None)
            or self.config.prompt_template_name
            or (template.name if template is not None else None)  # a managed prompt's (sdk/_prompts.py)
        )
        if name is None and run is None and not self.config.allow_unnamed_prompts:
            return None
        if name is not None:
            template = _named(kind, kwargs, template, name)
        hide_usage = False
        if kwargs.get("stream") is True and kind != EMBEDDING and self.config.stream_usage:
            options = kwargs.get("stream_options")
            if not (isinstance(options, Mapping) and options.get("include_usage")):
                base = dict(options) if isinstance(options, Mapping) else {}
                kwargs["stream_options"] = {**base, "include_usage": True}
                hide_usage = True
        if params and params.event_id:
            given = uuid.UUID(str(params.event_id))
            call_id = (str(given), given.bytes)
        else:
            call_id = new_id()  # text and bytes at once: no UUID object to make and format
        step_index = None
        if run is not None:
            if params is not None and params.user_id is not None:
                raise InvalidParams(
                    "user_id belongs to the run, not to one of its steps: "
                    "give it to pipeline.start(user_id=...)",
                    field="user_id",
                )
            step_index = run.next_step_index()
            if params is not None and params.metadata:
                run.merge_metadata(params.metadata)
            run_id: str | None = run.id
        else:
            run_id = str(params.chain_id) if params and params.chain_id is not None else None
        return Call(
            self,
            kind,
            call_id,
            _snapshot(kwargs),
            template,
            params,
            run_id,
            run_id is not None,
            step_index,
            hide_usage,
        )

    def announce_chain(self, call: Call) -> None:
        """Make sure the chain (a run the caller names) of ``call`` exists, and owns the user id,
        before the call lands: queued just ahead of it, the first time a call of the chain is recorded."""
        chain_id, params, scope = call.run_id, call.params, call.scope
        if chain_id is None or chain_id in self._chains or self.destination is None:
            return
        self._chains[chain_id] = None
        if len(self._chains) > 10_000:
            self._chains.popitem(last=False)
        user = (params.user_id if params else None) or (scope.user_id if scope else None)
        body: dict[str, Any] = {"id": chain_id, "startedAt": iso(call.wall), "status": "ok"}
        if user:
            body["userId"] = user
        _worker.submit(self.destination, "run", body)


def _render(kind: str, kwargs: dict[str, Any], params: CallParams | None) -> TemplateInfo | None:
    """Render the call's template into ``kwargs`` (always, recorded or not) and describe it."""
    if kind == CHAT:
        messages = kwargs.get("messages")
        if isinstance(messages, TemplateChat):
            kwargs["messages"] = messages.render()
            return messages.info()
        if messages is not None and not isinstance(messages, list):
            messages = kwargs["messages"] = list(messages)
        if messages and has_content_templates(messages):
            sent, chat, inputs = render_content_templates(messages)
            kwargs["messages"] = sent
            return TemplateInfo(None, chat=chat, params=inputs)
        if params is not None and params.template_chat is not None:
            values = params.template_params or {}
            if messages is None:
                kwargs["messages"] = render_chat(params.template_chat, values)
            return TemplateInfo(None, chat=list(params.template_chat), params=values)
    elif kind == COMPLETION:
        prompt = kwargs.get("prompt")
        if isinstance(prompt, TemplateText):
            kwargs["prompt"] = prompt.render()
            return prompt.info()
        if params is not None and params.template_text is not None:
            values = params.template_params or {}
            if prompt is None:
                kwargs["prompt"] = render_text(params.template_text, values)
            return TemplateInfo(None, text=params.template_text, params=values)
    return None


def _named(
    kind: str, kwargs: dict[str, Any], template: TemplateInfo | None, name: str
) -> TemplateInfo | None:
    # A name given to plain messages names the prompt and nothing more: its versions come from
    # templates, never from rendered content (one named prompt with a question in it showed a
    # "version" per question).
    if template is not None:
        return replace(template, name=name)
    return TemplateInfo(name)


def _snapshot(kwargs: dict[str, Any]) -> dict[str, Any]:
    # The caller may append to its message list right after the call: keep what was sent.
    request = dict(kwargs)
    messages = request.get("messages")
    if type(messages) is list:
        request["messages"] = [dict(m) if type(m) is dict else m for m in messages]
    for key in ("prompt", "input"):
        value = request.get(key)
        if type(value) is list:
            request[key] = list(value)
    return request
