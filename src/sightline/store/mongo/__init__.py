"""The one query compiler: MongoDB-style filters, sorts and aggregation pipelines, run in the database.

``fields`` resolves field paths, ``filter`` compiles filters and sorts, ``aggregate`` compiles
pipelines; ``query`` is what the API, export, the dashboard and evaluators call.
"""

from .query import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    CompiledAggregate,
    aggregate,
    compile_aggregate,
    compile_filter,
    find,
)

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "CompiledAggregate",
    "aggregate",
    "compile_aggregate",
    "compile_filter",
    "find",
]
