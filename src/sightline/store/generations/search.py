"""Free-text search over generations: their prompts, outputs, template names and metadata values.

Each generation has one search document: the words of its prompt (the rendered messages or prompt
text), its output (and alternatives), its template name and its metadata values, lower-cased and
with accents taken off, cut to :data:`MAX_DOCUMENT_CHARS` characters so a 1 MB prompt costs ingest
no more than a long one. The words are found here, in Python (:func:`words`), for the documents and
for the queries alike, so both databases index and look up the same words:

- SQLite: an FTS5 table ``generation_search`` whose rowid is the generation's ``seq`` (the ingest
  sequence: the writer's own number, never the client's text, and kept by VACUUM and backups, which
  SQLite's implicit rowid is not);
- PostgreSQL: a table ``generation_search (seq, document tsvector)`` with a GIN index, the words made
  a tsvector by the ``simple`` configuration (no stemming, no stop words: what FTS5 does).

Neither table is in ``tables.metadata`` (an FTS5 table is no SQLAlchemy table); migration 0015 makes
them and fills them for the rows already stored. The writer keeps them in its transactions: ingest
adds a document beside each new generation (``ingest.InsertGenerations``), retention and erasure
take it away with the generation (``retention.purge``) and anonymising writes it again without the
content. A search is one condition over ``generations`` (:func:`text_condition`), which the query
compiler ANDs with the rest of the filter: ``$text`` in a MongoDB-style filter, ``q=`` in a list's
query string.

Query syntax (:func:`parse_query`): words are AND-ed; ``"a quoted phrase"`` matches those words in
that order; a word ending in ``*`` matches words starting with it. Everything else a search engine
might read as syntax (``OR``, ``NEAR``, ``-``, ``:``, brackets) is just a word or a separator here,
so no input can make a syntax error.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Connection, Select, Table, bindparam, select, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from ...errors import InvalidInput
from .. import tables as t

__all__ = [
    "COMMON",
    "MAX_DOCUMENT_CHARS",
    "MAX_QUERY_CHARS",
    "MAX_TERMS",
    "Term",
    "backfill",
    "containing",
    "document",
    "forget",
    "index",
    "Planned",
    "parse_query",
    "plan_searches",
    "text_condition",
    "words",
]

# Characters of a generation's text that are indexed (its prompt first, then its output, template
# name and metadata values, each cut to what is left). About 3,000 words: a prompt is found by any
# word of its first pages, and making its document takes ~15 µs (a 1 MB prompt: ~2 ms).
MAX_DOCUMENT_CHARS = 20_000
MAX_QUERY_CHARS = 500
MAX_TERMS = 16

# A word: letters and digits (any script). What FTS5's unicode61 tokenizer takes as a token.
_WORD = re.compile(r"[^\W_]+")
# A query's parts: a quoted phrase (closed or not), or a run of anything but spaces and quotes.
_PART = re.compile(r'"([^"]*)"?|([^\s"]+)')


def _fold(text: str) -> str:
    """``text`` lower-cased, without accents (é is e), as documents and queries are matched."""
    text = text.lower()
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# ASCII text (most of it) takes a faster way to the same words: a table that makes every character
# but letters and digits a space (three times faster than the pattern: ~15 µs a generation).
_ASCII = str.maketrans({chr(i): " " for i in range(128) if not chr(i).isalnum()})


def words(text: str) -> list[str]:
    """The searchable words of ``text``: runs of letters and digits, lower-cased, without accents."""
    if text.isascii():
        return text.lower().translate(_ASCII).split()
    return _WORD.findall(_fold(text))


def _texts(value: Any, out: list[str], depth: int = 0) -> None:
    """Every string inside ``value`` (a message list, content parts, a JSON output), in order."""
    if isinstance(value, str):
        out.append(value)
    elif depth > 8:
        return
    elif isinstance(value, Mapping):
        for key, item in value.items():
            # A message's role or a content part's type is no content; image data is not text.
            if key not in ("role", "type", "image_url", "input_audio", "detail"):
                _texts(item, out, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _texts(item, out, depth + 1)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        out.append(str(value))


def _joined(value: Any) -> str:
    parts: list[str] = []
    _texts(value, parts)
    return " ".join(parts)


def document(body: Mapping[str, Any]) -> str:
    """The search document of a generation record (its wire body): its words, space-separated.

    Within :data:`MAX_DOCUMENT_CHARS`: the template name and metadata values first (up to a tenth),
    then the prompt and the output share the rest, each taking at least half when both are long, so
    a huge prompt never pushes its output out of the index.
    """
    output = body.get("output") or {}
    alternatives = [a.get("content") for a in output.get("alternatives") or () if isinstance(a, Mapping)]
    metadata = body.get("metadata") or {}
    other = _joined(
        [
            (body.get("template") or {}).get("name"),
            *(v.get("value", v.get("text")) if isinstance(v, Mapping) else v for v in metadata.values()),
        ]
    )[: MAX_DOCUMENT_CHARS // 10]
    prompt = _joined((body.get("input") or {}).get("content"))
    answer = _joined([output.get("content"), *alternatives])
    budget = MAX_DOCUMENT_CHARS - len(other) - 2  # the two spaces between the parts
    prompt_chars = min(len(prompt), max(budget // 2, budget - len(answer)))
    answer_chars = min(len(answer), budget - prompt_chars)
    return " ".join(words(f"{other} {prompt[:prompt_chars]} {answer[:answer_chars]}"))


@dataclass(frozen=True, slots=True)
class Term:
    """One part of a query: words that must appear in this order (one word, or a phrase), the last of
    them as a prefix when ``prefix``."""

    words: tuple[str, ...]
    prefix: bool = False


def parse_query(q: Any, field: str = "q") -> list[Term]:
    """The terms of a search query; InvalidInput naming ``field`` when it is not a string, is longer
    than :data:`MAX_QUERY_CHARS`, has more than :data:`MAX_TERMS` terms or no word at all."""
    if not isinstance(q, str):
        raise InvalidInput(f"{field} must be a string of words to search for", field=field)
    if len(q) > MAX_QUERY_CHARS:
        raise InvalidInput(f"{field} is longer than {MAX_QUERY_CHARS} characters", field=field)
    terms: list[Term] = []
    for match in _PART.finditer(q):
        phrase, bare = match.group(1), match.group(2)
        if phrase is not None:
            found = tuple(words(phrase))
            prefix = False
        else:
            found = tuple(words(bare))
            # "gpt-4o*": the words of "gpt-4o", the last a prefix. A "*" alone is nothing.
            prefix = bare.endswith("*") and bool(found) and bare.rstrip("*")[-1:].isalnum()
        if found and Term(found, prefix) not in terms:
            terms.append(Term(found, prefix))
    if not terms:
        raise InvalidInput(f"{field} has no word to search for (letters or digits)", field=field)
    if len(terms) > MAX_TERMS:
        raise InvalidInput(f"{field} has more than {MAX_TERMS} words or phrases", field=field)
    return terms


def _fts5(terms: Sequence[Term]) -> str:
    """The FTS5 query of ``terms``: each quoted (words hold letters and digits only, so nothing in
    them can read as FTS5 syntax), joined by spaces (AND)."""
    return " ".join(f'"{" ".join(term.words)}"' + (" *" if term.prefix else "") for term in terms)


def _tsquery(terms: Sequence[Term]) -> str:
    """The PostgreSQL tsquery text of ``terms``: lexemes quoted, a phrase joined by ``<->``."""
    parts = []
    for term in terms:
        lexemes = [f"'{word}'" for word in term.words]
        if term.prefix:
            lexemes[-1] += ":*"
        parts.append(f"({' <-> '.join(lexemes)})" if len(lexemes) > 1 else lexemes[0])
    return " & ".join(parts)


# A search whose words are in more documents than this is not run from its matches on SQLite (see
# :func:`plan_searches`). Figures at 1M rows: bench/bench_ui_scale.py.
COMMON = 10_000


@dataclass(frozen=True, slots=True)
class Planned:
    """A ``$text`` search whose plan :func:`plan_searches` chose (a Python object, so no JSON a client
    sends can choose one): ``"match"`` (from its matches), ``"probe"`` or ``"scan"``."""

    q: str
    plan: str


class _TextMatch(FunctionElement[bool]):
    """The generations whose document matches, found from the matches (for rare words): arguments
    are the ``seq`` column, the FTS5 query and the tsquery; each database's compiler takes its own."""

    type = Boolean()
    name = "text_match"
    inherit_cache = True
    # A condition of its own (as "a IN (...)" is): never compared with 1 where booleans are numbers,
    # which would keep SQLite from looking the matches up.
    _is_implicitly_boolean = True


class _TextProbe(_TextMatch):
    """The same condition, for common words in a page on SQLite: each row the rest of the query
    reaches, newest first, has its document probed, so the page stops after its first rows instead
    of listing every match."""

    name = "text_probe"
    inherit_cache = True


class _TextScan(_TextMatch):
    """The same condition, for common words in totals on SQLite: the matches read once into a set
    that each row the rest of the filter picks is looked up in."""

    name = "text_scan"
    inherit_cache = True


@compiles(_TextMatch, "sqlite")
def _text_match_sqlite(element: _TextMatch, compiler: SQLCompiler, **kw: Any) -> str:
    seq, fts5, _ = list(element.clauses)
    query = compiler.process(fts5, **kw)
    table = getattr(seq, "table", None)
    if isinstance(table, Table) and table.name == "generations":
        # By rowid: SQLite's planner then looks the few matches up (rather than walking the filtered
        # rows and their table entries for the seq column), and rowid is in every index.
        name = compiler.preparer.format_table(table)
        return (
            f"{name}.rowid IN (SELECT found.rowid FROM generation_search JOIN generations AS found "
            f"ON found.seq = generation_search.rowid WHERE generation_search MATCH {query})"
        )
    return (
        f"{compiler.process(seq, **kw)} IN (SELECT rowid FROM generation_search "
        f"WHERE generation_search MATCH {query})"
    )


@compiles(_TextProbe, "sqlite")
def _text_probe_sqlite(element: _TextProbe, compiler: SQLCompiler, **kw: Any) -> str:
    seq, fts5, _ = list(element.clauses)
    return (
        f"EXISTS (SELECT 1 FROM generation_search WHERE generation_search MATCH "
        f"{compiler.process(fts5, **kw)} AND generation_search.rowid = {compiler.process(seq, **kw)})"
    )


@compiles(_TextScan, "sqlite")
def _text_scan_sqlite(element: _TextScan, compiler: SQLCompiler, **kw: Any) -> str:
    seq, fts5, _ = list(element.clauses)
    # "+": not by the seq index (that would be the plan from the matches); the other filters' index.
    return (
        f"+{compiler.process(seq, **kw)} IN (SELECT rowid FROM generation_search "
        f"WHERE generation_search MATCH {compiler.process(fts5, **kw)})"
    )


@compiles(_TextMatch, "postgresql")
def _text_match_postgresql(element: _TextMatch, compiler: SQLCompiler, **kw: Any) -> str:
    # PostgreSQL keeps statistics of the words in a tsvector column: its planner chooses by itself.
    seq, _, tsquery = list(element.clauses)
    return (
        f"{compiler.process(seq, **kw)} IN (SELECT seq FROM generation_search "
        f"WHERE document @@ to_tsquery('simple', {compiler.process(tsquery, **kw)}))"
    )


_PLANS: dict[str, type[_TextMatch]] = {"match": _TextMatch, "probe": _TextProbe, "scan": _TextScan}


def text_condition(seq: Any, q: Any, field: str = "q", *, plan: str = "match") -> ColumnElement[bool]:
    """The condition that a generation (whose ``seq`` column is given) matches the search ``q``,
    run by ``plan`` (:func:`plan_searches`)."""
    terms = parse_query(q, field)
    return _PLANS[plan](
        seq,
        bindparam("text_fts5", _fts5(terms), unique=True),
        bindparam("text_tsquery", _tsquery(terms), unique=True),
    )


def plan_searches(conn: Connection, filter: Mapping[str, Any] | None, *, paged: bool = True) -> Any:
    """``filter`` with each ``$text`` search given its plan (:class:`Planned`).

    SQLite's planner knows nothing of how many documents hold a word, so it is counted here (up to
    :data:`COMMON`, a few milliseconds): a rarer search runs from its matches (each looked up by
    rowid: milliseconds at any size); a common one, for a page (``paged``: newest first, with a
    limit) probes the rows the rest of the filter reaches until the page is full, and for totals
    reads its matches once into a set. PostgreSQL keeps statistics of the words of a tsvector
    column and chooses by itself: there, and for a filter without ``$text``, it comes back as it is.
    """
    if not filter or conn.dialect.name != "sqlite" or "$text" not in str(filter):
        return filter
    return _planned(conn, filter, "probe" if paged else "scan", 0)


def _planned(conn: Connection, value: Any, common: str, depth: int) -> Any:
    if depth > 25 or not isinstance(value, Mapping):
        return value
    out: dict[Any, Any] = {}
    for key, spec in value.items():
        if key == "$text" and isinstance(spec, Mapping) and set(spec) == {"$search"}:
            q = spec["$search"]
            found = conn.execute(
                text(
                    "SELECT count(*) FROM (SELECT 1 FROM generation_search "
                    "WHERE generation_search MATCH :q LIMIT :n)"
                ),
                {"q": _fts5(parse_query(q, "$text")), "n": COMMON + 1},
            ).scalar_one()
            out[key] = Planned(q, common if found > COMMON else "match")
        elif key in ("$and", "$or", "$nor") and isinstance(spec, list):
            out[key] = [_planned(conn, part, common, depth + 1) for part in spec]
        else:
            out[key] = spec
    return out


def containing(key: str, project_id: int, q: Any, field: str = "q") -> Select[Any]:
    """The runs or chats (``key``: ``"run_id"`` or ``"chat_id"``) of the project that hold a generation
    matching the search ``q``: a subquery for ``runs.c.id.in_(...)`` (a list of runs or chats
    searched by the words of their steps' prompts, outputs, templates and metadata)."""
    g = t.generations
    column = g.c[key]
    return select(column).where(
        g.c.project_id == project_id, column.is_not(None), text_condition(g.c.seq, q, field)
    )


def index(conn: Connection, rows: Iterable[tuple[int, str]]) -> None:
    """Add the documents of generations, as ``(seq, document)``, in ``conn``'s transaction; a number
    that has one already (a backup restored over rows) gets the new document."""
    params = [{"seq": seq, "doc": doc} for seq, doc in rows if seq is not None]
    if not params:
        return
    if conn.dialect.name == "postgresql":
        sql = (
            "INSERT INTO generation_search (seq, document) VALUES (:seq, to_tsvector('simple', :doc)) "
            "ON CONFLICT (seq) DO UPDATE SET document = excluded.document"
        )
    else:
        sql = "INSERT OR REPLACE INTO generation_search (rowid, document) VALUES (:seq, :doc)"
    conn.execute(text(sql), params)


def forget(conn: Connection, project_id: int, ids: Sequence[str]) -> None:
    """Remove the documents of these generations of a project (call it before deleting them)."""
    if not ids:
        return
    key = "seq" if conn.dialect.name == "postgresql" else "rowid"
    sql = text(
        f"DELETE FROM generation_search WHERE {key} IN "
        "(SELECT seq FROM generations WHERE project_id = :pid AND id IN :ids)"
    ).bindparams(bindparam("ids", expanding=True))
    conn.execute(sql, {"pid": project_id, "ids": list(ids)})


def backfill(conn: Connection, after_seq: int = 0, batch: int = 2000) -> int:
    """Index every generation numbered after ``after_seq`` (what a migration or a restore added
    without documents), a batch at a time; answers how many."""
    import orjson  # the bodies come as JSON text from the raw select below

    done, last = 0, after_seq
    while True:
        rows = conn.execute(
            text(
                "SELECT seq, body FROM generations WHERE seq > :last AND seq IS NOT NULL "
                "ORDER BY seq LIMIT :n"
            ),
            {"last": last, "n": batch},
        ).all()
        if not rows:
            return done
        docs = []
        for seq, body in rows:
            record = orjson.loads(body) if isinstance(body, str | bytes) else body
            docs.append((seq, document(record if isinstance(record, Mapping) else {})))
        index(conn, docs)
        done += len(rows)
        last = rows[-1][0]
