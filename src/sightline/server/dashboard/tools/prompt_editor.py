"""Managing prompts in the dashboard: create, edit (each save a new version), move a label, test-run.

Saving and moving labels are for admins (as ``POST /api/prompts`` is for an admin or an API key);
anyone logged in may test-run a version. A test run goes through the gateway's own path, as the
AI-Eye endpoint ``/api/openai/...`` does (provider choice, cache, cost, recording): the generation is
recorded under the prompt's name with its template and arguments, so it carries its version.

Routes live under ``/prompts/_new`` and ``/prompts/{name}/_edit|_label|_run``: a managed prompt's
name cannot start with ``_``, and these are matched before ``/prompts/{name:path}`` (prompts.py).
"""

from __future__ import annotations

import math
import secrets
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from ....errors import InvalidInput, NotFound, SightlineError
from ....gateway import Caller, Context, Gateway, answer_text
from ....store.access.projects import ApiKey
from ....store.prompts import (
    MoveLabel,
    Prompt,
    SavePrompt,
    check_label,
    get_prompt,
    last_model,
    numbered_versions,
    parse_draft,
)
from ....templating import TemplateError
from ...auth import actor
from ..core.context import AdminDep, FormDep, View, ViewDep
from ..core.render import page, redirect, url_with
from ..core.session import load_session

__all__ = ["dashboard_caller", "router"]

router = APIRouter()

_ROWS_MAX = 30  # chat message rows a form may post
_SECRET = secrets.token_urlsafe(24)  # signs the feedback key of a test run's answer, which nobody reads


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _float(form: FormData, name: str, field: str) -> float | None:
    raw = _field(form, name)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"parameters.{field}: expected a number, got {raw[:40]!r}", field=field) from None
    if not math.isfinite(value):
        raise InvalidInput(f"parameters.{field}: expected a number", field=field)
    return value


def _int(form: FormData, name: str, field: str) -> int | None:
    raw = _field(form, name)
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise InvalidInput(f"parameters.{field}: expected a positive whole number", field=field)
    return int(raw)


def _messages(form: FormData) -> list[dict[str, str]]:
    out = []
    for i in range(_ROWS_MAX):
        content = form.get(f"content_{i}")
        if not isinstance(content, str) or not content.strip():
            continue
        role = _field(form, f"role_{i}") or "user"
        out.append({"role": role, "content": content.replace("\r\n", "\n")})
    return out


def body_from_form(form: FormData, name: str | None) -> dict[str, Any]:
    """The API body (``POST /api/prompts``) a prompt form means: the same checks then apply."""
    parameters: dict[str, Any] = {}
    extra = _field(form, "extra")
    if extra:
        try:
            parsed = orjson.loads(extra)
        except orjson.JSONDecodeError:
            raise InvalidInput(
                "parameters: the other parameters must be a JSON object", field="extra"
            ) from None
        if not isinstance(parsed, dict):
            raise InvalidInput("parameters: the other parameters must be a JSON object", field="extra")
        parameters.update(parsed)
    for key, value in (
        ("temperature", _float(form, "temperature", "temperature")),
        ("topP", _float(form, "top_p", "topP")),
        ("maxTokens", _int(form, "max_tokens", "maxTokens")),
    ):
        if value is not None:
            parameters[key] = value
    if form.get("json_mode"):
        parameters["jsonMode"] = True
    body: dict[str, Any] = {
        "name": name if name is not None else _field(form, "name"),
        "model": _field(form, "model") or None,
        "parameters": parameters,
        "description": _field(form, "description") or None,
    }
    if _field(form, "type") == "chat":
        body["messages"] = _messages(form)
    else:
        template = form.get("template")
        body["template"] = template.replace("\r\n", "\n") if isinstance(template, str) else ""
    return body


def _values(prompt: Prompt | None) -> dict[str, Any]:
    """What a form shows: a version's content and settings (empty for a new prompt)."""
    if prompt is None:
        return {"type": "text", "template": "", "messages": [], "parameters": {}, "extra": ""}
    params = dict(prompt.parameters)
    known = {k: params.pop(k) for k in ("temperature", "topP", "maxTokens", "jsonMode") if k in params}
    return {
        "type": "chat" if prompt.messages is not None else "text",
        "template": prompt.text or "",
        "messages": prompt.messages or [],
        "model": prompt.model or "",
        "parameters": known,
        "extra": orjson.dumps(params).decode() if params else "",
        "description": prompt.description or "",
    }


def _form_values(form: FormData) -> dict[str, Any]:
    """The form as it was posted, to show again with its error."""
    return {
        "type": _field(form, "type") or "text",
        "template": form.get("template") or "",
        "messages": _messages(form),
        "model": _field(form, "model"),
        "parameters": {
            "temperature": _field(form, "temperature"),
            "topP": _field(form, "top_p"),
            "maxTokens": _field(form, "max_tokens"),
            "jsonMode": bool(form.get("json_mode")),
        },
        "extra": _field(form, "extra"),
        "description": _field(form, "description"),
        "name": _field(form, "name"),
    }


def _form_page(
    request: Request, view: View, name: str | None, values: dict[str, Any], **extra: Any
) -> Response:
    rows = list(values["messages"]) + [{"role": "user", "content": ""}] * (2 if values["messages"] else 3)
    title = f"New version of {name}" if name else "New prompt"
    return page(
        request,
        "prompt_form.html",
        view=view,
        title=title,
        name=name,
        values=values,
        rows=rows[:_ROWS_MAX],
        **extra,
    )


@router.get("/prompts/_new", include_in_schema=False)
def new_prompt(request: Request, view: AdminDep) -> Response:
    view.section = "prompts"
    return _form_page(request, view, None, _values(None))


async def _save(request: Request, view: View, form: FormData, name: str | None) -> Response:
    try:
        draft = parse_draft(body_from_form(form, name))
        saved = await request.app.state.db.writer.write(
            SavePrompt(view.project_id, draft, actor(request, view.user))
        )
    except SightlineError as exc:
        if not isinstance(exc, InvalidInput) and exc.status_code >= 500:
            raise
        values = _form_values(form)
        return _form_page(request, view, name, values, error=exc.message, status_code=exc.status_code)
    load_session(request).say("ok", f"Saved {saved.name} version {saved.version}.")
    return redirect(request, url_with(f"/prompts/{saved.name}", view.scope))


@router.post("/prompts/_new", include_in_schema=False)
async def create_prompt(request: Request, view: AdminDep, form: FormDep) -> Response:
    view.section = "prompts"
    return await _save(request, view, form, None)


def _get(request: Request, view: View, name: str, version: str | None) -> Prompt:
    """Version ``version`` of ``name``: a managed save's number (``3``), a content hash, or the tag
    the prompt's page gives a template version (``v3``: its third content)."""
    with request.app.state.db.read() as conn:
        if version and version[0] in "vV" and version[1:].isdigit():
            tagged = [
                v.version for v in numbered_versions(conn, view.project_id, name) if v.tag == version.lower()
            ]
            version = tagged[0] if tagged else version
        found = get_prompt(conn, view.project_id, name, version=version or None)
    if found is None:
        raise NotFound(
            f"prompt {name!r} has no version {version!r}" if version else f"no prompt named {name!r}"
        )
    return found


def _version_param(request: Request) -> str | None:
    value = request.query_params.get("version") or None
    if value is not None and (len(value) > 64 or not value.isascii() or not value.isalnum()):
        raise InvalidInput("version: a version number or a template version", field="version")
    return value


@router.get("/prompts/{name}/_edit", include_in_schema=False)
def edit_prompt(name: str, request: Request, view: AdminDep) -> Response:
    view.section = "prompts"
    prompt = _get(request, view, name, _version_param(request))
    return _form_page(request, view, name, _values(prompt), base=prompt)


@router.post("/prompts/{name}/_edit", include_in_schema=False)
async def save_version(name: str, request: Request, view: AdminDep, form: FormDep) -> Response:
    view.section = "prompts"
    return await _save(request, view, form, name)


@router.post("/prompts/{name}/_label", include_in_schema=False)
async def move_label(name: str, request: Request, view: AdminDep, form: FormDep) -> Response:
    session = load_session(request)
    try:
        label = check_label(_field(form, "label"))
        raw = _field(form, "version")
        if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
            raise InvalidInput("version: choose a version", field="version")
        op = MoveLabel(view.project_id, name, label, int(raw), actor(request, view.user))
        previous = await request.app.state.db.writer.write(op)
    except (InvalidInput, NotFound) as exc:
        session.say("error", exc.message)
    else:
        moved = f"from version {previous} " if previous is not None else ""
        session.say("ok", f"Label {label} moved {moved}to version {raw}.")
    return redirect(request, url_with(f"/prompts/{name}", view.scope))


def _run_page(request: Request, view: View, prompt: Prompt, **extra: Any) -> Response:
    view.section = "prompts"
    with request.app.state.db.read() as conn:
        numbered = numbered_versions(conn, view.project_id, prompt.name)
    # The template version's number (v1 is the oldest content), as the prompt's page names it.
    tag = next((f"v{v.number}" for v in numbered if v.version == prompt.template_version), None)
    return page(
        request,
        "prompt_run.html",
        view=view,
        title=f"Test {prompt.name}",
        prompt=prompt,
        tag=tag,
        **extra,
    )


@router.get("/prompts/{name}/_run", include_in_schema=False)
def run_form(name: str, request: Request, view: ViewDep) -> Response:
    prompt = _get(request, view, name, _version_param(request))
    model = prompt.model
    if not model:  # a recorded version: try it with the model its generations called last
        with request.app.state.db.read() as conn:
            model = last_model(conn, view.project_id, name, prompt.template_version)
    return _run_page(request, view, prompt, args={}, model=model or "")


def dashboard_caller(view: View) -> Caller:
    """The gateway's caller for a dashboard user: the project and environment they look at (the
    gateway needs a scope; this user has no API key of their own)."""
    project = view.project or {}
    environment = view.environment or (view.environments[0] if view.environments else "dev")
    key = ApiKey(
        0, view.project_id, str(project.get("name", "")), environment, "dashboard", "dashboard", "", 0, None
    )
    return Caller(key, _SECRET)


@router.post("/prompts/{name}/_run", include_in_schema=False)
async def run_prompt(name: str, request: Request, view: ViewDep, form: FormDep) -> Response:
    version = _field(form, "version")
    prompt = _get(request, view, name, version if version.isascii() and version.isalnum() else None)
    args = {arg: str(form.get(f"arg_{arg}") or "") for arg in prompt.args}
    model = _field(form, "model") or prompt.model or ""
    shown: dict[str, Any] = {"args": args, "model": model}
    if not model:
        return _run_page(
            request, view, prompt, error="model: choose a model to call", status_code=400, **shown
        )
    try:
        body = prompt.request(args)
    except TemplateError as exc:
        return _run_page(request, view, prompt, error=exc.message, status_code=400, **shown)
    body["model"] = model
    gateway: Gateway = request.app.state.gateway
    context = Context(template=prompt.recorded_template(args))
    try:
        answer = await gateway.model_call(
            dashboard_caller(view), "chat/completions", body, context, forward={}, default_cache="use"
        )
    except SightlineError as exc:
        return _run_page(request, view, prompt, error=exc.message, status_code=exc.status_code, **shown)
    try:
        parsed = orjson.loads(answer.body or b"null")
    except orjson.JSONDecodeError:
        parsed = None
    finally:
        answer.finish()  # record the call (and cache its answer), in the background
    call = answer.call
    result: dict[str, Any] = {
        "status": answer.status,
        "generation_id": call.generation_id if call is not None else None,
        "cache_hit": bool(call and call.cache_hit),
        "messages": body["messages"],
    }
    if answer.status >= 400:
        error = parsed.get("error") if isinstance(parsed, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        result["error"] = str(message or f"the model call failed ({answer.status})")
    else:
        result["text"] = answer_text("chat", parsed)
    return _run_page(request, view, prompt, result=result, **shown)
