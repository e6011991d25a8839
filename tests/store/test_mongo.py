"""MongoDB-style find and aggregate over generations, on SQLite and PostgreSQL.

One database per module and dialect, filled once the way the server fills it (wire records through
``prepare_generation`` and ``InsertGenerations``); every test only reads it.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import OperationalError

from sightline.errors import InvalidInput
from sightline.schema import Generation, Run
from sightline.store import Database, Scope, migrate
from sightline.store import tables as t
from sightline.store.generations.ingest import InsertGenerations, UpsertRun, prepare_generation
from sightline.store.mongo import aggregate, compile_aggregate, compile_filter, find

PG_ADMIN_URL = os.environ.get(
    "SIGHTLINE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
T0 = datetime(2024, 5, 1, tzinfo=UTC)
PROJECT, OTHER_PROJECT = 1, 2


def gid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _gen(n: int, model: str, prompt: int, completion: int, **extra: Any) -> Generation:
    body: dict[str, Any] = {
        "id": gid(n),
        "timestamp": (T0 + timedelta(hours=n)).isoformat(),
        "model": {"id": model, "provider": extra.pop("provider", "openai")},
        "usage": {"promptTokens": prompt, "completionTokens": completion, "cost": 0.01 * n},
        "performance": {"latency": 100.0 * n},
        **extra,
    }
    return Generation.model_validate(body)


# n: model, tokens, and what else each record has (n is also its hour after T0).
RECORDS = [
    _gen(
        1,
        "gpt-4",
        100,
        50,
        parameters={"temperature": 0.2, "style": 3},
        input={"content": "Hello world"},
        metadata={
            "userId": "alice",
            "plan": "pro",
            "beta": True,
            "tags": ["a", "b"],
            "docs": {"type": "url", "url": "https://example.com/1", "text": "doc"},
        },
        feedback={"rating": 5},
    ),
    _gen(
        2,
        "gpt-4",
        200,
        100,
        parameters={"temperature": 0.7},
        input={"content": "hello again"},
        metadata={"userId": "bob", "plan": "free", "tags": ["b"]},
        status="error",
        error={"type": "rate_limit", "message": "slow down"},
        feedback={"rating": 2, "thumbs": "down"},
    ),
    _gen(
        3,
        "gpt-3.5-turbo",
        10,
        5,
        parameters={"temperature": 1.0},
        cacheHit=True,
        output={"type": "json", "content": {"a": 1}},
        metadata={"beta": False},
    ),
    _gen(
        4,
        "claude-3",
        1000,
        500,
        provider="anthropic",
        metadata={"plan": "pro", "sessionId": "s1"},
        input={"type": "text", "content": [{"role": "user", "content": "Hi"}]},
        usage={"promptTokens": 1000, "completionTokens": 500, "reasoningTokens": 300, "cost": 0.5},
        feedback={"rating": 4, "score": 0.8},
    ),
    _gen(
        5,
        "gpt-4",
        300,
        200,
        parameters={"style": "hot"},
        chatId="c1",
        stepIndex=2,
        template={"name": "greet", "text": "Hi {name}", "params": {"name": "Ann"}},
    ),
    _gen(6, "gpt-3.5-turbo", 20, 10, runId="run-1", stepIndex=0, metadata={"tags": ["c"]}),
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def engine(dialect: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A fresh migrated database holding RECORDS (project 1, 'dev') and a few others."""
    admin: Engine | None = None
    name = f"sightline_t_{uuid.uuid4().hex[:12]}"
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('mongo') / 'sightline.db'}"
    else:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        except OperationalError as exc:  # no server: skip, as the shared fixtures do
            admin.dispose()
            if os.environ.get("CI"):
                raise
            pytest.skip(f"PostgreSQL is not available: {exc}")
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    db = Database(url)
    try:
        migrate(db.engine)
        dev, prod = Scope(PROJECT, "dev"), Scope(PROJECT, "prod")
        with db.engine.begin() as conn:
            UpsertRun(dev, Run(id="run-1", user_id="carol", metadata={"experiment": "e1"})).apply(conn)
            InsertGenerations(dev, [prepare_generation(g, dev) for g in RECORDS]).apply(conn)
            InsertGenerations(prod, [prepare_generation(_gen(7, "gpt-4", 1, 1), prod)]).apply(conn)
            other = Scope(OTHER_PROJECT, "dev")
            InsertGenerations(other, [prepare_generation(_gen(8, "gpt-4", 9, 9), other)]).apply(conn)
        yield db.engine
    finally:
        db.close()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def ids(engine: Engine, filter: dict[str, Any], **kwargs: Any) -> list[int]:
    """The record numbers ``find`` answers, in its order (newest first unless sorted)."""
    kwargs.setdefault("environment", "dev")
    with engine.connect() as conn:
        bodies = find(conn, PROJECT, filter, **kwargs)
    return [int(b["id"].rsplit("-", 1)[1]) for b in bodies]


def run(engine: Engine, pipeline: list[Any], **kwargs: Any) -> list[dict[str, Any]]:
    kwargs.setdefault("environment", "dev")
    with engine.connect() as conn:
        return aggregate(conn, PROJECT, pipeline, **kwargs)


# find: columns


def test_plain_value_means_equal_and_newest_comes_first(engine: Engine) -> None:
    assert ids(engine, {"model.id": "gpt-4"}) == [5, 2, 1]
    assert ids(engine, {"model.id": {"$eq": "gpt-4"}}) == [5, 2, 1]
    assert ids(engine, {}) == [6, 5, 4, 3, 2, 1]


def test_ne_in_nin_on_columns(engine: Engine) -> None:
    assert ids(engine, {"model.id": {"$ne": "gpt-4"}}) == [6, 4, 3]
    assert ids(engine, {"model.id": {"$in": ["claude-3", "gpt-3.5-turbo"]}}) == [6, 4, 3]
    assert ids(engine, {"model.id": {"$nin": ["gpt-4", "claude-3"]}}) == [6, 3]
    assert ids(engine, {"model.id": {"$in": []}}) == []


def test_ne_and_nin_match_records_without_the_field(engine: Engine) -> None:
    assert ids(engine, {"userId": {"$ne": "alice"}}) == [6, 5, 4, 3, 2]
    assert ids(engine, {"metadata.userId": {"$nin": ["alice", "bob"]}}) == [6, 5, 4, 3]
    assert ids(engine, {"userId": None}) == [5, 4, 3]
    assert ids(engine, {"userId": {"$in": ["bob", None]}}) == [5, 4, 3, 2]
    # Comparisons with a column are plain SQL (NULL where it is missing); negations count NULL as false.
    assert ids(engine, {"stepIndex": {"$ne": 2}}) == [6, 4, 3, 2, 1]
    assert ids(engine, {"stepIndex": {"$nin": [0]}}) == [5, 4, 3, 2, 1]
    assert ids(engine, {"$nor": [{"feedback.rating": {"$gte": 4}}]}) == [6, 5, 3, 2]
    assert ids(engine, {"$nor": [{"stepIndex": 2}, {"cacheHit": True}]}) == [6, 4, 2, 1]
    assert ids(engine, {"stepIndex": {"$not": {"$not": {"$gt": 1}}}}) == [5]
    assert ids(engine, {"$or": [{"stepIndex": {"$gt": 1}}, {"feedback.rating": 2}]}) == [5, 2]


def test_timestamp_ranges_take_iso_strings_and_datetimes(engine: Engine) -> None:
    window = {"$gte": "2024-05-01T02:00:00Z", "$lt": "2024-05-01T05:00:00+00:00"}
    assert ids(engine, {"timestamp": window}) == [4, 3, 2]
    assert ids(engine, {"timestamp": {"$gt": T0 + timedelta(hours=4)}}) == [6, 5]
    assert ids(engine, {"timestamp": {"$lte": {"$date": "2024-05-01T01:00:00Z"}}}) == [1]
    assert ids(engine, {"timestamp": "2024-05-01T03:00:00Z"}) == [3]


def test_numbers_booleans_and_feedback(engine: Engine) -> None:
    assert ids(engine, {"feedback.rating": {"$gte": 4}}) == [4, 1]
    assert ids(engine, {"feedback.thumbs": "down"}) == [2]
    assert ids(engine, {"feedback.score": {"$exists": True}}) == [4]
    assert ids(engine, {"usage.totalTokens": {"$gt": 150, "$lte": 1500}}) == [5, 4, 2]
    assert ids(engine, {"usage.cost": {"$lt": 0.025}}) == [2, 1]
    assert ids(engine, {"performance.latency": {"$gte": 500}}) == [6, 5]
    assert ids(engine, {"cacheHit": True}) == [3]
    assert ids(engine, {"stepIndex": {"$gte": 0}}) == [6, 5]


def test_other_indexed_paths(engine: Engine) -> None:
    assert ids(engine, {"status": "error", "error.type": "rate_limit"}) == [2]
    assert ids(engine, {"output.type": "json"}) == [3]
    assert ids(engine, {"model.provider": "anthropic"}) == [4]
    assert ids(engine, {"metadata.sessionId": "s1"}) == [4]
    assert ids(engine, {"chatId": "c1", "template.name": "greet"}) == [5]
    assert ids(engine, {"template.version": {"$exists": True}}) == [5]
    assert ids(engine, {"runId": "run-1"}) == [6]
    assert ids(engine, {"id": gid(3)}) == [3]


def test_regex_with_and_without_options(engine: Engine) -> None:
    assert ids(engine, {"model.id": {"$regex": "^gpt-3"}}) == [6, 3]
    assert ids(engine, {"model.id": {"$regex": "^GPT-4$", "$options": "i"}}) == [5, 2, 1]
    assert ids(engine, {"model.id": {"$not": {"$regex": "^gpt"}}}) == [4]
    # x: whitespace and comments are ignored (RE2 has no such flag: the compiler strips them)
    extended = "^ gpt - 4 $  # the model\n"
    assert ids(engine, {"model.id": {"$regex": extended, "$options": "xi"}}) == [5, 2, 1]
    assert ids(engine, {"model.id": {"$regex": "^gpt[-] 3", "$options": "x"}}) == [6, 3]
    assert ids(engine, {"model.id": {"$regex": "^gpt\\ 3", "$options": "x"}}) == []


def test_logical_operators(engine: Engine) -> None:
    assert ids(engine, {"$or": [{"model.id": "claude-3"}, {"usage.totalTokens": {"$lt": 20}}]}) == [4, 3]
    assert ids(engine, {"$and": [{"model.id": "gpt-4"}, {"feedback.rating": {"$lt": 3}}]}) == [2]
    assert ids(engine, {"$nor": [{"model.id": "gpt-4"}, {"cacheHit": True}]}) == [6, 4]
    # $not of a condition on a missing field matches the record, as in MongoDB.
    assert ids(engine, {"feedback.rating": {"$not": {"$gte": 4}}}) == [6, 5, 3, 2]


def test_exists_on_columns(engine: Engine) -> None:
    assert ids(engine, {"userId": {"$exists": True}}) == [6, 2, 1]  # 6: its run's userId
    assert ids(engine, {"feedback.rating": {"$exists": False}}) == [6, 5, 3]


# find: metadata


def test_custom_metadata_matches_its_text(engine: Engine) -> None:
    assert ids(engine, {"metadata.plan": "pro"}) == [4, 1]
    assert ids(engine, {"metadata.plan": {"type": "string", "value": "free"}}) == [2]
    assert ids(engine, {"metadata.plan.value": "free"}) == [2]
    assert ids(engine, {"metadata.beta": True}) == [1]
    assert ids(engine, {"metadata.beta": "false"}) == [3]
    assert ids(engine, {"metadata.docs": "https://example.com/1"}) == [1]
    assert ids(engine, {"metadata.plan": {"$in": ["free", "enterprise"]}}) == [2]
    assert ids(engine, {"metadata.plan": {"$regex": "^f"}}) == [2]
    assert ids(engine, {"metadata.plan": {"$gt": "g"}}) == [4, 1]


def test_custom_metadata_absent_and_negated(engine: Engine) -> None:
    assert ids(engine, {"metadata.plan": {"$exists": True}}) == [4, 2, 1]
    assert ids(engine, {"metadata.plan": {"$exists": False}}) == [6, 5, 3]
    assert ids(engine, {"metadata.plan": {"$ne": "pro"}}) == [6, 5, 3, 2]
    assert ids(engine, {"metadata.plan": None}) == [6, 5, 3]
    assert ids(engine, {"metadata.plan": {"$nin": ["pro", "free"]}}) == [6, 5, 3]


def test_run_metadata_and_user_apply_to_its_generations(engine: Engine) -> None:
    assert ids(engine, {"metadata.experiment": "e1"}) == [6]
    assert ids(engine, {"userId": "carol"}) == [6]


def test_tags(engine: Engine) -> None:
    assert ids(engine, {"metadata.tags": "b"}) == [2, 1]
    assert ids(engine, {"metadata.tags": {"$in": ["a", "c"]}}) == [6, 1]
    assert ids(engine, {"metadata.tags": {"$all": ["a", "b"]}}) == [1]
    assert ids(engine, {"metadata.tags": {"$nin": ["b"]}}) == [6, 5, 4, 3]
    assert ids(engine, {"metadata.tags": {"$exists": True}}) == [6, 2, 1]


# find: any other path, through the JSON record


def test_json_paths_compare_numbers_as_numbers(engine: Engine) -> None:
    assert ids(engine, {"parameters.temperature": {"$gt": 0.5}}) == [3, 2]
    assert ids(engine, {"parameters.temperature": 0.2}) == [1]
    assert ids(engine, {"parameters.temperature": {"$in": [0.2, 1]}}) == [3, 1]
    assert ids(engine, {"parameters.style": {"$in": [3, "hot"]}}) == [5, 1]
    assert ids(engine, {"usage.reasoningTokens": {"$gte": 300}}) == [4]


def test_json_paths_compare_only_values_of_the_same_type(engine: Engine) -> None:
    assert ids(engine, {"parameters.style": "hot"}) == [5]
    assert ids(engine, {"parameters.style": "3"}) == []
    assert ids(engine, {"parameters.style": {"$lt": 100}}) == [1]  # not the string "hot"
    assert ids(engine, {"parameters.style": {"$gt": "a"}}) == [5]  # not the number 3
    assert ids(engine, {"parameters.temperature": "0.7"}) == []
    assert ids(engine, {"parameters.temperature": {"$ne": 0.2}}) == [6, 5, 4, 3, 2]


def test_json_paths_strings_booleans_and_exists(engine: Engine) -> None:
    assert ids(engine, {"input.content": {"$regex": "^hello", "$options": "i"}}) == [2, 1]
    assert ids(engine, {"input.content": "Hello world"}) == [1]
    assert ids(engine, {"template.params.name": "Ann"}) == [5]
    assert ids(engine, {"output.content.a": 1}) == [3]
    assert ids(engine, {"input.content.0.role": "user"}) == [4]
    assert ids(engine, {"parameters.temperature": {"$exists": True}}) == [3, 2, 1]
    assert ids(engine, {"parameters.temperature": {"$exists": False}}) == [6, 5, 4]
    assert ids(engine, {"usage.cachedTokens": {"$exists": False}}) == [6, 5, 4, 3, 2, 1]


# find: sort, limit, scope


def test_sort_skip_and_limit(engine: Engine) -> None:
    assert ids(engine, {}, sort={"usage.totalTokens": 1}) == [3, 6, 1, 2, 5, 4]
    assert ids(engine, {}, sort={"model.id": 1, "timestamp": -1}, limit=3) == [4, 6, 3]
    assert ids(engine, {}, sort={"timestamp": 1}, skip=2, limit=2) == [3, 4]
    # Missing values sort first ascending, as in MongoDB; JSON numbers before strings.
    assert ids(engine, {}, sort={"parameters.temperature": 1, "timestamp": 1}) == [4, 5, 6, 1, 2, 3]
    assert ids(engine, {}, sort={"parameters.style": 1, "timestamp": 1}) == [2, 3, 4, 6, 1, 5]
    assert ids(engine, {}, sort={"parameters.style": -1, "timestamp": 1}) == [5, 1, 2, 3, 4, 6]
    assert ids(engine, {}, sort={"feedback.rating": -1, "timestamp": 1}) == [1, 4, 2, 3, 5, 6]


def test_find_is_scoped_to_project_and_environment(engine: Engine) -> None:
    assert ids(engine, {"model.id": "gpt-4"}, environment=None) == [7, 5, 2, 1]
    assert ids(engine, {"model.id": "gpt-4"}, environment="prod") == [7]
    assert ids(engine, {"environment": "prod"}, environment=None) == [7]
    with engine.connect() as conn:
        assert [b["id"] for b in find(conn, OTHER_PROJECT, {})] == [gid(8)]


def test_find_returns_the_stored_records(engine: Engine) -> None:
    with engine.connect() as conn:
        [row] = find(conn, PROJECT, {"id": gid(1)})
    body = row["body"]
    assert body["model"] == {"id": "gpt-4", "provider": "openai"}
    assert body["usage"]["totalTokens"] == 150
    assert body["metadata"]["plan"] == {"type": "string", "value": "pro"}
    assert body["timestamp"].startswith("2024-05-01T01:00:00")


def test_compiled_filter_runs_as_a_plain_where(engine: Engine) -> None:
    gens = t.generations
    query = select(gens.c.id).where(gens.c.environment == "dev", compile_filter({"metadata.plan": "pro"}))
    with engine.connect() as conn:
        assert sorted(conn.scalars(query)) == [gid(1), gid(4)]


# aggregate


def test_tokens_by_model(engine: Engine) -> None:
    pipeline = [
        {
            "$group": {
                "_id": "$model.id",
                "totalTokens": {"$sum": "$usage.totalTokens"},
                "averageTokens": {"$avg": "$usage.totalTokens"},
                "count": {"$sum": 1},
            }
        },
        {"$sort": {"totalTokens": -1}},
    ]
    assert run(engine, pipeline) == [
        {"_id": "claude-3", "totalTokens": 1500, "averageTokens": 1500.0, "count": 1},
        {"_id": "gpt-4", "totalTokens": 950, "averageTokens": pytest.approx(316.6667), "count": 3},
        {"_id": "gpt-3.5-turbo", "totalTokens": 45, "averageTokens": 22.5, "count": 2},
    ]
    result = run(engine, pipeline)
    assert all(isinstance(r["totalTokens"], int) and isinstance(r["averageTokens"], float) for r in result)


def test_match_then_group_then_match_on_the_groups(engine: Engine) -> None:
    pipeline = [
        {"$match": {"status": "ok"}},
        {
            "$group": {
                "_id": "$model.id",
                "n": {"$count": {}},
                "cost": {"$sum": "$usage.cost"},
                "slowest": {"$max": "$performance.latency"},
            }
        },
        {"$match": {"n": {"$gte": 2}}},
        {"$sort": {"_id": 1}},
    ]
    assert run(engine, pipeline) == [
        {"_id": "gpt-3.5-turbo", "n": 2, "cost": pytest.approx(0.09), "slowest": 600.0},
        {"_id": "gpt-4", "n": 2, "cost": pytest.approx(0.06), "slowest": 500.0},
    ]


def test_group_everything_count_and_project(engine: Engine) -> None:
    everything = [
        {
            "$group": {
                "_id": None,
                "tokens": {"$sum": "$usage.totalTokens"},
                "first": {"$min": "$timestamp"},
                "last": {"$max": "$timestamp"},
            }
        }
    ]
    assert run(engine, everything) == [
        {"_id": None, "tokens": 2495, "first": "2024-05-01T01:00:00Z", "last": "2024-05-01T06:00:00Z"}
    ]
    assert run(engine, [{"$match": {"model.id": "nope"}}, *everything]) == []
    assert run(engine, [{"$match": {"metadata.plan": "pro"}}, {"$count": "pro"}]) == [{"pro": 2}]
    projected = run(engine, [*everything, {"$project": {"_id": 0, "total": "$tokens"}}])
    assert projected == [{"total": 2495}]


def test_group_by_several_keys_and_day(engine: Engine) -> None:
    pipeline = [
        {
            "$group": {
                "_id": {
                    "provider": "$model.provider",
                    "day": {"$dateTrunc": {"date": "$timestamp", "unit": "hour", "binSize": 3}},
                },
                "n": {"$sum": 1},
            }
        },
        {"$sort": {"_id.day": 1, "_id.provider": 1}},
    ]
    assert run(engine, pipeline) == [
        {"_id": {"provider": "openai", "day": "2024-05-01T00:00:00Z"}, "n": 2},
        {"_id": {"provider": "anthropic", "day": "2024-05-01T03:00:00Z"}, "n": 1},
        {"_id": {"provider": "openai", "day": "2024-05-01T03:00:00Z"}, "n": 2},
        {"_id": {"provider": "openai", "day": "2024-05-01T06:00:00Z"}, "n": 1},
    ]


def test_group_by_day_and_week_then_filter_the_buckets(engine: Engine) -> None:
    by_day = run(
        engine,
        [
            {
                "$group": {
                    "_id": {"$dateTrunc": {"date": "$timestamp", "unit": "day"}},
                    "n": {"$sum": 1},
                    "cacheRate": {"$avg": "$cacheHit"},
                }
            },
            {"$match": {"_id": {"$gte": "2024-05-01T00:00:00Z"}}},
        ],
    )
    assert by_day == [{"_id": "2024-05-01T00:00:00Z", "n": 6, "cacheRate": pytest.approx(1 / 6)}]
    weeks = [
        {
            "$group": {
                "_id": {"$dateTrunc": {"date": "$timestamp", "unit": "week", "startOfWeek": s}},
                "n": {"$sum": 1},
            }
        }
        for s in ("sunday", "monday")
    ]
    # 2024-05-01 is a Wednesday.
    assert run(engine, [weeks[0]]) == [{"_id": "2024-04-28T00:00:00Z", "n": 6}]
    assert run(engine, [weeks[1]]) == [{"_id": "2024-04-29T00:00:00Z", "n": 6}]


def test_group_twice_project_and_count(engine: Engine) -> None:
    pipeline = [
        {
            "$group": {
                "_id": {"model": "$model.id", "ok": "$status"},
                "n": {"$sum": 2},
                "first": {"$min": "$timestamp"},
                "name": {"$max": "$model.id"},
            }
        },
        {
            "$group": {
                "_id": "$_id.ok",
                "models": {"$sum": 1},
                "weight": {"$sum": "$n"},
                "since": {"$min": "$first"},
            }
        },
        {"$sort": {"_id": 1}},
    ]
    assert run(engine, pipeline) == [
        {"_id": "error", "models": 1, "weight": 2, "since": "2024-05-01T02:00:00Z"},
        {"_id": "ok", "models": 3, "weight": 10, "since": "2024-05-01T01:00:00Z"},
    ]
    kept = run(
        engine, [*pipeline, {"$sort": {"weight": -1}}, {"$project": {"since": 1}}, {"$sort": {"_id": 1}}]
    )
    assert kept == [
        {"_id": "error", "since": "2024-05-01T02:00:00Z"},
        {"_id": "ok", "since": "2024-05-01T01:00:00Z"},
    ]
    by_weight = run(engine, [*pipeline, {"$sort": {"weight": -1}}, {"$project": {"_id": 0, "since": 1}}])
    assert by_weight == [{"since": "2024-05-01T01:00:00Z"}, {"since": "2024-05-01T02:00:00Z"}]
    early = {"$match": {"since": {"$lt": "2024-05-01T02:00:00Z"}}}
    assert run(engine, [*pipeline, early, {"$count": "n"}]) == [{"n": 1}]


def test_group_by_metadata_and_json_paths(engine: Engine) -> None:
    by_plan = run(engine, [{"$group": {"_id": "$metadata.plan", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}])
    assert by_plan == [{"_id": None, "n": 3}, {"_id": "free", "n": 1}, {"_id": "pro", "n": 2}]
    by_temperature = run(
        engine,
        [
            {"$match": {"parameters.temperature": {"$exists": True}}},
            {
                "$group": {
                    "_id": "$parameters.temperature",
                    "n": {"$sum": 1},
                    "latency": {"$avg": "$performance.latency"},
                }
            },
            {"$match": {"_id": {"$in": [0.2, 1]}}},
            {"$sort": {"_id": -1}},
        ],
    )
    assert by_temperature == [{"_id": 1.0, "n": 1, "latency": 300.0}, {"_id": 0.2, "n": 1, "latency": 100.0}]
    by_style = run(
        engine,
        [
            {"$group": {"_id": "$parameters.style", "reasoning": {"$sum": "$usage.reasoningTokens"}}},
            {"$match": {"_id": {"$in": [3, "hot"]}}},
        ],
    )
    assert sorted(by_style, key=lambda r: str(r["_id"])) == [
        {"_id": 3, "reasoning": 0},
        {"_id": "hot", "reasoning": 0},
    ]


def test_sort_skip_limit_before_and_after_group(engine: Engine) -> None:
    # The three newest records, grouped: the limit applies before the group.
    newest = run(
        engine,
        [
            {"$sort": {"timestamp": -1}},
            {"$limit": 3},
            {"$group": {"_id": "$model.id", "n": {"$sum": 1}}},
            {"$sort": {"n": -1, "_id": 1}},
        ],
    )
    assert newest == [{"_id": "claude-3", "n": 1}, {"_id": "gpt-3.5-turbo", "n": 1}, {"_id": "gpt-4", "n": 1}]
    paged = run(
        engine,
        [
            {"$group": {"_id": "$model.id", "n": {"$sum": 1}}},
            {"$sort": {"_id": 1}},
            {"$skip": 1},
            {"$limit": 1},
        ],
    )
    assert paged == [{"_id": "gpt-3.5-turbo", "n": 2}]


def test_pipeline_without_group_returns_records(engine: Engine) -> None:
    records = run(
        engine,
        [{"$match": {"model.id": "gpt-4"}}, {"$sort": {"usage.totalTokens": 1}}, {"$skip": 1}, {"$limit": 5}],
    )
    assert [r["id"] for r in records] == [gid(2), gid(5)]
    # A $match after a $limit filters what the limit kept.
    kept = run(engine, [{"$sort": {"timestamp": 1}}, {"$limit": 2}, {"$match": {"model.id": "gpt-4"}}])
    assert [r["id"] for r in kept] == [gid(1), gid(2)]


def test_aggregate_is_scoped(engine: Engine) -> None:
    count = [{"$match": {"model.id": "gpt-4"}}, {"$count": "n"}]
    assert run(engine, count) == [{"n": 3}]
    assert run(engine, count, environment=None) == [{"n": 4}]
    with engine.connect() as conn:
        assert aggregate(conn, OTHER_PROJECT, count) == [{"n": 1}]


def test_too_many_results_is_an_error(engine: Engine) -> None:
    with pytest.raises(InvalidInput, match=r"more than 2 results"):
        run(engine, [{"$match": {}}], max_results=2)


def test_group_on_columns_reads_the_columns_not_the_json() -> None:
    compiled = compile_aggregate([{"$group": {"_id": "$model.id", "t": {"$sum": "$usage.totalTokens"}}}], 1)
    sql = str(compiled.statement)
    assert "model_id" in sql and "total_tokens" in sql and "body" not in sql


# mistakes


@pytest.mark.parametrize(
    ("filter", "message"),
    [
        ({"usage.totalTokens": {"$foo": 1}}, "unknown operator '$foo' at 'usage.totalTokens'"),
        ({"$where": "1"}, "unknown operator '$where'"),
        ({"model.id": {"$in": "gpt-4"}}, "$in at 'model.id' needs a list"),
        ({"timestamp": {"$gte": "yesterday"}}, "'timestamp' is a date"),
        ({"usage.totalTokens": "many"}, "'usage.totalTokens' is compared with a number"),
        ({"model.id": 4}, "'model.id' is compared with a string"),
        ({"model.id'); drop table generations; --": 1}, "invalid field path"),
        ({"model": {"id": "gpt-4"}}, "'model': comparing with an object"),
        ({"$or": []}, "$or needs a non-empty list"),
        ({"metadata.tags": {"$gt": "a"}}, "'metadata.tags' supports"),
        ({"model.id": {"$regex": "("}}, "$regex at 'model.id'"),
        ({"feedback.comment": "x"}, "only feedback.rating"),
        ({"usage.totalTokens": {"$gt": 2**70}}, "'usage.totalTokens': the number"),
        ({"parameters.seed": 2**70}, "'parameters.seed': the number"),
        ({"model.id": {"$options": "i"}}, "$options at 'model.id' needs a $regex"),
        ({"model.id": {"$regex": "x", "$options": "g"}}, "$options at 'model.id' may only hold"),
        ({"cacheHit": {"$exists": "yes"}}, "$exists at 'cacheHit' needs true or false"),
        ({"model.id": {"$not": "gpt"}}, "$not at 'model.id' needs operators"),
        ({"usage.totalTokens": {"$gt": None}}, "$gt at 'usage.totalTokens' needs"),
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"usage.colour": 1}, "unknown field 'usage.colour'"),
        ({"model.id": {"$regex": "(a)\\1"}}, "linear time"),
        ({"model.id": {"$regex": "a" * 2001}}, "longer than 2000"),
    ],
)
def test_bad_filters_name_the_problem(engine: Engine, filter: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        ids(engine, filter)


def test_values_cannot_inject_sql(engine: Engine) -> None:
    assert ids(engine, {"model.id": "gpt-4' OR '1'='1"}) == []
    assert ids(engine, {"metadata.plan": "x' OR 1=1 --"}) == []


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        ([{"$lookup": {}}], "unknown stage '$lookup'"),
        (
            [{"$group": {"_id": "$model.id", "x": {"$push": "$id"}}}],
            "unknown accumulator '$push' in $group field 'x'",
        ),
        ([{"$group": {"model": "$model.id"}}], "needs an '_id'"),
        (
            [{"$group": {"_id": "$model.id", "n": {"$sum": 1}}}, {"$match": {"total": 1}}],
            "'total' is not a field",
        ),
        ([{"$group": {"_id": "$model.id", "t": {"$sum": "$model.id"}}}], "'model.id' is not a number"),
        ([{"$match": {"parameters.x": {"$bad": 1}}}], "unknown operator '$bad' at 'parameters.x'"),
        ([{"$sort": {"timestamp": 2}}], "sort direction of 'timestamp'"),
        ([{"$limit": 0}], "$limit needs"),
        ([{"$skip": 2**63}], "$skip needs a whole number from 0 to 9223372036854775807"),
        ([{"$limit": 2**63}], "$limit needs a whole number from 1"),
        ([{"$group": {"_id": None, "n": {"$sum": 2**64}}}], "'n': the number"),
        ({"$match": {}}, "a pipeline must be a list"),
    ],
)
def test_bad_pipelines_name_the_problem(engine: Engine, pipeline: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        run(engine, pipeline)


def test_bad_find_arguments(engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="limit"):
        ids(engine, {}, limit=1001)
    with pytest.raises(InvalidInput, match="sort direction"):
        ids(engine, {}, sort={"timestamp": "desc"})
    with pytest.raises(InvalidInput, match="skip"):
        ids(engine, {}, skip=2**63)
