"""No input gives a 5xx, and a refusal changes nothing: property-based bodies (hypothesis) for ingest,
query, aggregate and export, and schemathesis over the server's own ``/openapi.json``.

Both run against a real ``sightline serve`` on a SQLite file (the writer process included), so what is
checked is what a client sees. The number of examples is bounded to keep the suite inside CI's time.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ServerProcess

_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

# JSON of every shape, with the values that broke servers before: huge and tiny numbers, 2**63, NUL,
# long text, empty containers, and the wrong type where an object is expected.
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**63, 2**63 - 1, 2**64, 10**100]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e100, 1e308, -1e308, 5e-324]),
    st.text(max_size=30),
    st.sampled_from(["", "\u0000", "a" * 300, "$regex", "^(a+)+$", "=1+2", "2023-01-01T00:00:00Z"]),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_field_names = st.sampled_from(
    [
        "id", "timestamp", "model", "input", "output", "usage", "metadata", "performance", "template",
        "parameters", "runId", "chatId", "stepIndex", "status", "error", "feedback", "cacheHit",
    ]
)  # fmt: skip
_paths = st.sampled_from(
    [
        "model.id", "metadata.userId", "metadata.s", "usage.totalTokens", "usage.cost", "performance.latency",
        "timestamp", "status", "output.type", "template.name", "scores.x", "$or", "$and", "nope", "",
    ]
)  # fmt: skip


def _generation_like() -> st.SearchStrategy[dict[str, Any]]:
    good = {
        "id": str(uuid.uuid4()),
        "model": {"id": "gpt-4o-mini"},
        "input": {"type": "text", "content": "hi"},
        "output": {"type": "text", "content": "hello"},
    }
    return st.dictionaries(_field_names, _json, max_size=5).map(lambda changes: {**good, **changes})


def _item() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries({"type": st.just("generation"), "body": _generation_like()}),
        st.fixed_dictionaries(
            {
                "type": st.one_of(st.sampled_from(["generation", "run", "feedback", "score", "x"]), _json),
                "body": _json,
            }
        ),  # fmt: skip
        _json,
    )


def _count(server: ServerProcess) -> int:
    path = server.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM generations").fetchone()[0])


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=30
    ) as client:
        yield client


def _ok_or_refused(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400 and response.headers.get("content-type", "").startswith(
        "application/json"
    ):
        body = response.json()
        assert set(body) == {"error"} and {"type", "message"} <= set(body["error"]), body


@_SETTINGS
@given(batch=st.one_of(st.lists(_item(), max_size=4), _json))
def test_ingest_never_fails_and_a_refusal_stores_nothing(
    server: ServerProcess, http: httpx.Client, batch: Any
) -> None:
    before = _count(server)
    response = http.post("/api/ingest", json={"batch": batch})
    _ok_or_refused(response)
    stored = _count(server) - before
    if response.status_code >= 400:
        assert stored == 0
    else:
        results = response.json()["results"] if isinstance(response.json(), dict) else response.json()
        assert isinstance(results, list)


@_SETTINGS
@given(
    filter_=st.one_of(st.dictionaries(_paths, _json, max_size=3), _json),
    sort=st.one_of(st.none(), st.dictionaries(_paths, st.sampled_from([1, -1, 0, "x"]), max_size=2), _json),
    limit=st.one_of(st.none(), _scalars),
    skip=st.one_of(st.none(), _scalars),
)
def test_query_never_fails(http: httpx.Client, filter_: Any, sort: Any, limit: Any, skip: Any) -> None:
    body: dict[str, Any] = {"filter": filter_}
    for name, value in (("sort", sort), ("limit", limit), ("skip", skip)):
        if value is not None:
            body[name] = value
    _ok_or_refused(http.post("/api/generations/query", json=body))


_stages = st.one_of(
    st.fixed_dictionaries({"$match": st.dictionaries(_paths, _json, max_size=2)}),
    st.fixed_dictionaries(
        {
            "$group": st.dictionaries(
                st.sampled_from(["_id", "n", "cost"]),
                st.one_of(
                    st.sampled_from(["$model.id", "$usage.cost", None]),
                    st.dictionaries(st.sampled_from(["$sum", "$avg", "$max", "$x"]), _json, max_size=1),
                ),
                max_size=3,
            )
        }
    ),  # fmt: skip
    st.fixed_dictionaries({"$sort": st.dictionaries(_paths, st.sampled_from([1, -1, 2]), max_size=2)}),
    st.fixed_dictionaries({"$limit": _scalars}),
    st.fixed_dictionaries({"$skip": _scalars}),
    st.dictionaries(st.sampled_from(["$project", "$unwind", "$lookup", "$count", "$x"]), _json, max_size=1),
    _json,
)


@_SETTINGS
@given(pipeline=st.one_of(st.lists(_stages, max_size=4), _json))
def test_aggregate_never_fails(http: httpx.Client, pipeline: Any) -> None:
    _ok_or_refused(http.post("/api/generations/aggregate", json={"pipeline": pipeline}))


@_SETTINGS
@given(
    body=st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "format": st.one_of(st.sampled_from(["jsonl", "csv"]), _json),
                "filters": st.one_of(st.dictionaries(_paths, _json, max_size=3), _json),
                "fields": st.one_of(
                    st.lists(st.sampled_from(["input", "output", "feedback", "x"]), max_size=3), _json
                ),
            },
        ),  # fmt: skip
        _json,
    )
)
def test_export_never_fails(http: httpx.Client, body: Any) -> None:
    with http.stream("POST", "/api/generations/export", json=body) as response:
        response.read()
        _ok_or_refused(response)


# --- schemathesis: every operation of the OpenAPI document ----------------------------------------


def test_no_operation_of_the_openapi_document_answers_5xx(server: ServerProcess) -> None:
    """schemathesis generates requests for every operation the server documents (the gateway's, which
    forward to the model provider that tests never reach, excepted) and none may answer 5xx."""
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if not op.path.startswith(("/api/openai/", "/api/cache/"))]
    assert len(operations) >= 10, [op.path for op in operations]
    failures: list[str] = []
    for operation in operations:

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call(headers={"Authorization": f"Bearer {server.key}"}, timeout=30)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
                )

        check()
    assert not failures, "\n".join(failures[:10])
