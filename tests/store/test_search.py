"""Free-text search of generations on both databases: what a user types finds what it should."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sightline.errors import InvalidInput
from sightline.schema import Generation
from sightline.store import Database, Scope
from sightline.store.generations.ingest import InsertGenerations, prepare_generation
from sightline.store.generations.reads.queries import list_generations
from sightline.store.generations.reads.totals import filter_totals
from sightline.store.generations.search import MAX_DOCUMENT_CHARS, document, parse_query
from sightline.store.mongo.aggregate import aggregate
from sightline.store.mongo.query import find
from sightline.store.retention.purge import AnonymiseGenerations, DeleteGenerations

DEMO, OTHER = Scope(1, "dev"), Scope(2, "dev")
FILLER = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "models",
    "answer",
    "questions",
    "about",
    "weather",
]
START = datetime(2026, 11, 1, tzinfo=UTC)


def _gen(n: int, output: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"g{n}",
        "timestamp": (START + timedelta(seconds=n)).isoformat(),
        "model": {"id": "gpt-4o-mini"},
        "input": {"content": [{"role": "user", "content": f"question number {n}"}]},
        "output": {"content": output},
        "metadata": {"userId": f"user{n % 3}"},
        **extra,
    }


def _write(db: Database, scope: Scope, records: list[dict[str, Any]]) -> None:
    gens = [Generation.model_validate(r) for r in records]
    db.writer.write_sync(InsertGenerations(scope, [prepare_generation(g, scope) for g in gens]))


def _ids(db: Database, filter: dict[str, Any], scope: Scope = DEMO) -> list[str]:
    with db.read() as conn:
        return [g["id"] for g in list_generations(conn, scope.project_id, filter, limit=1000).data]


def _search(db: Database, q: str, **more: Any) -> list[str]:
    return _ids(db, {"$text": {"$search": q}, **more})


@pytest.fixture
def filled(db: Database) -> Database:
    """Three thousand generations of filler, one of which says 'zanzibar' in its output."""
    rng = random.Random(3)
    records = [_gen(n, " ".join(rng.choices(FILLER, k=30))) for n in range(3000)]
    records[1234]["output"]["content"] += " and then Zanzibar, the island."
    records[2001]["output"]["content"] = "Spices of zanzibar island"
    for start in range(0, len(records), 1000):
        _write(db, DEMO, records[start : start + 1000])
    return db


def test_a_word_of_one_output_among_thousands_is_found_alone_and_with_a_user(filled: Database) -> None:
    assert _search(filled, "zanzibar") == ["g2001", "g1234"]  # newest first
    assert _search(filled, "ZANZIBAR") == ["g2001", "g1234"]  # case does not matter
    assert _search(filled, "zanzibar", **{"metadata.userId": "user1"}) == ["g1234"]
    assert _search(filled, "zanzibar", userId="user2") == []
    assert _search(filled, "zanzibar island") == ["g2001", "g1234"]  # words are ANDed
    assert _search(filled, "zanzibar number 1234") == ["g1234"]  # ... across prompt and output


def test_phrases_prefixes_and_no_match(filled: Database) -> None:
    assert _search(filled, '"zanzibar island"') == ["g2001"]
    assert _search(filled, '"island zanzibar"') == []
    assert _search(filled, "zanzi*") == ["g2001", "g1234"]
    assert _search(filled, "zanzi") == []  # a whole word, unless it says *
    assert _search(filled, "nowhere") == []


def test_template_names_and_metadata_values_are_searched(db: Database) -> None:
    _write(
        db,
        DEMO,
        [
            _gen(1, "a", template={"name": "support-reply", "text": "Hi {name}", "params": {"name": "x"}}),
            _gen(2, "b", metadata={"customer": "Acme Corporation", "region": "eu-west"}),
            _gen(3, "c", metadata={"docs": {"type": "url", "url": "https://x.test", "text": "Handbook"}}),
            _gen(4, "Crème brûlée"),
        ],
    )
    assert _search(db, "support-reply") == ["g1"]
    assert _search(db, "acme") == ["g2"]
    assert _search(db, "eu west") == ["g2"]
    assert _search(db, "handbook") == ["g3"]
    assert _search(db, "creme brulee") == ["g4"]  # accents do not matter
    assert _search(db, "CRÈME") == ["g4"]


def test_another_projects_words_are_not_found(db: Database) -> None:
    _write(db, DEMO, [_gen(1, "ordinary")])
    _write(db, OTHER, [_gen(1, "secretword"), _gen(2, "ordinary")])
    assert _search(db, "secretword") == []
    assert _ids(db, {"$text": {"$search": "secretword"}}, OTHER) == ["g1"]
    assert _search(db, "ordinary") == ["g1"]


@pytest.mark.parametrize(
    "q",
    [
        'say "hello',
        "foo*bar**",
        "NEAR(a b)",
        "a OR b NOT c AND d",
        "-minus +plus",
        "column:value ^start",
        "(unbalanced",
        "'single' `back`",
        "emoji 🙂 ünïcödé 漢字",
        "x" * 400,
    ],
)
def test_hostile_queries_give_a_result(db: Database, q: str) -> None:
    _write(db, DEMO, [_gen(1, "hello near the start")])
    assert isinstance(_search(db, q), list)


@pytest.mark.parametrize("q", ["", "   ", "*", '""', '"""', "- + ( ) :", "x " * 300, 42, None])
def test_queries_without_words_or_too_long_are_refused_naming_the_field(db: Database, q: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        _search(db, q)
    assert caught.value.field == "$text"
    with pytest.raises(InvalidInput) as named:
        parse_query(q)
    assert named.value.field == "q"


def test_text_combines_with_other_conditions_in_find_totals_and_aggregate(filled: Database) -> None:
    with filled.read() as conn:
        found = find(conn, 1, {"$text": {"$search": "zanzibar"}, "metadata.userId": {"$ne": "user0"}})
        assert [r["id"] for r in found] == ["g1234"]
        either = {"$or": [{"$text": {"$search": "zanzibar"}}, {"id": "g7"}]}
        assert {r["id"] for r in find(conn, 1, either)} == {"g1234", "g2001", "g7"}
        totals = filter_totals(conn, 1, {"$text": {"$search": "zanzibar"}})
        assert totals.wire()["matched"] == 2
        grouped = aggregate(
            conn,
            1,
            [
                {"$match": {"$text": {"$search": "zanzibar"}}},
                {"$group": {"_id": "$metadata.userId", "n": {"$sum": 1}}},
            ],
        )
        assert sorted((r["_id"], r["n"]) for r in grouped) == [("user0", 1), ("user1", 1)]
        with pytest.raises(InvalidInput, match=r"\$text"):
            aggregate(conn, 1, [{"$group": {"_id": "$model.id"}}, {"$match": {"$text": {"$search": "x"}}}])
        with pytest.raises(InvalidInput):
            find(conn, 1, {"$text": "zanzibar"})


def test_deleted_and_anonymised_generations_are_no_longer_found(filled: Database) -> None:
    filled.writer.write_sync(DeleteGenerations(1, ["g1234"]))
    assert _search(filled, "zanzibar") == ["g2001"]
    filled.writer.write_sync(AnonymiseGenerations(1, ["g2001"]))
    assert _search(filled, "zanzibar") == []
    assert _search(filled, "user1") == _ids(filled, {"metadata.userId": "user1"})  # metadata stays


def test_a_long_prompt_is_indexed_up_to_its_bound() -> None:
    words = document({"input": {"content": "word " * 100_000 + "needle"}, "output": {"content": "tail"}})
    assert len(words) <= MAX_DOCUMENT_CHARS
    assert "needle" not in words and words.split()[-1] == "tail"  # the output is kept
    both = document({"input": {"content": "ask " * 100_000}, "output": {"content": "say " * 100_000}})
    assert both.count("ask") == both.count("say")


def test_rows_written_before_the_index_are_indexed_by_the_backfill(db: Database) -> None:
    from sqlalchemy import text

    from sightline.store.generations.search import backfill

    _write(db, DEMO, [_gen(1, "remembered")])
    with db.transaction() as conn:
        conn.execute(text("DELETE FROM generation_search"))
    assert _search(db, "remembered") == []
    with db.transaction() as conn:
        assert backfill(conn) == 1
    assert _search(db, "remembered") == ["g1"]


def test_common_and_rare_words_plan_differently_and_find_the_same_rows(
    filled: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sightline.store.generations import search
    from sightline.store.mongo.filter import compile_filter

    monkeypatch.setattr(search, "COMMON", 100)  # "question" is in all 3,000 documents, "zanzibar" in 2
    with filled.read() as conn:
        planned = search.plan_searches(conn, {"$and": [{"$text": {"$search": "question"}}]})
        rare = search.plan_searches(conn, {"$text": {"$search": "zanzibar"}})
    common = planned["$and"][0]["$text"]
    if filled.is_sqlite:
        assert common == search.Planned("question", "probe") and rare["$text"].plan == "match"
        assert "EXISTS" in str(compile_filter(planned).compile(filled.engine))
        with filled.read() as conn:
            scan = search.plan_searches(conn, {"$text": {"$search": "question"}}, paged=False)
        assert scan["$text"].plan == "scan"
    else:
        assert planned == {"$and": [{"$text": {"$search": "question"}}]}  # PostgreSQL plans itself
    flt = {
        "$text": {"$search": "question"},
        "metadata.userId": "user2",
        "timestamp": {"$lt": "2026-11-01T00:10:00Z"},
    }
    with filled.read() as conn:
        probed = [r["id"] for r in find(conn, 1, flt, limit=1000)]
        from sightline.store.generations.reads.queries import page_query

        matched = [r.id for r in conn.execute(page_query(flt, 1, 1000, None))]  # no plan: from the matches
    assert probed == matched[:1000] and len(probed) == 200
    with filled.read() as conn:
        assert filter_totals(conn, 1, flt).wire()["matched"] == 200


def test_runs_and_chats_are_found_by_the_words_of_their_steps(db: Database) -> None:
    from sqlalchemy import select

    from sightline.store import tables as t
    from sightline.store.generations.search import containing

    steps = [_gen(1, "plain", runId="r1"), _gen(2, "the volcano erupted", runId="r2", chatId="c2")]
    other = [_gen(3, "volcano", runId="r3")]
    for step in [*steps, *other]:
        step["metadata"] = {}  # a run's user is the run's
    _write(db, DEMO, steps)
    _write(db, OTHER, other)
    with db.read() as conn:
        runs = conn.execute(select(t.runs.c.id).where(t.runs.c.id.in_(containing("run_id", 1, "volcano"))))
        assert [r.id for r in runs] == ["r2"]
        assert list(conn.execute(containing("chat_id", 1, "volcano")).scalars()) == ["c2"]


def test_migration_0015_indexes_the_generations_already_stored_and_goes_back(empty_database_url: str) -> None:
    import json

    from alembic import command
    from sqlalchemy import create_engine, inspect, text

    from sightline.store.engine.migrate import alembic_config

    engine = create_engine(empty_database_url)

    def to(revision: str, down: bool = False) -> None:
        config = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, revision)

    to("0014")
    body = {
        "id": "old",
        "output": {"content": "stored before search existed"},
        "metadata": {"team": "Falcon"},
    }
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO generations (id, project_id, environment, ts_us, model_id, status, cache_hit, "
                "output_type, prompt_tokens, completion_tokens, total_tokens, latency_ms, body, seq) "
                "VALUES ('old', 1, 'dev', 1000, 'm', 'ok', false, 'text', 1, 2, 3, 4.5, :body, 1)"
            ),
            {"body": json.dumps(body)},
        )
    to("head")
    engine.dispose()
    db = Database(empty_database_url)
    assert _search(db, "existed") == ["old"] and _search(db, "falcon") == ["old"]
    db.engine.dispose()
    to("0014", down=True)
    assert "generation_search" not in inspect(engine).get_table_names()
    engine.dispose()


def test_a_restored_backup_is_searchable(db: Database, tmp_path: Any) -> None:
    from sightline.store.engine.backup import dump, load
    from sightline.store.engine.migrate import migrate

    _write(db, DEMO, [_gen(1, "archived walrus")])
    dump(db.engine, tmp_path / "backup.jsonl.gz")
    fresh = Database(f"sqlite:///{tmp_path / 'restored.db'}")  # from either database
    migrate(fresh.engine)
    load(fresh.engine, tmp_path / "backup.jsonl.gz")
    assert _search(fresh, "walrus") == ["g1"]
    fresh.engine.dispose()


def test_words_are_the_same_whichever_way_they_are_found() -> None:
    from sightline.store.generations.search import words

    assert words("Hello, World_x 12.5 gpt-4o\t(a)") == ["hello", "world", "x", "12", "5", "gpt", "4o", "a"]
    assert words("Crème brûlée, ÉTÉ 漢字 x") == ["creme", "brulee", "ete", "漢字", "x"]
