"""The database tables, in SQLAlchemy Core.

Columns hold what is filtered, sorted or grouped often (project, environment, time, model, user,
run, chat, template, status, tokens, cost, latency, latest feedback); the whole record is kept as
JSON (JSONB on PostgreSQL) in ``body`` so any field path can still be queried. Custom metadata is
also kept one row per key in ``generation_metadata`` so ``metadata.<key>=value`` filters use an
index instead of scanning JSON.

Times are integer microseconds since the Unix epoch (``*_us``): the same type and the same
arithmetic (time buckets, ranges) on every database.

The schema is created and changed only by the Alembic migrations in ``store/engine/migrations``.
"""

from __future__ import annotations

from .access import api_keys, environments, install, login_throttle, projects, sessions, users
from .audit import audit_log
from .base import metadata
from .evals import (
    dataset_items,
    datasets,
    evaluator_versions,
    evaluators,
    experiment_items,
    experiments,
    rollup_scores,
    score_latest,
    scores,
)
from .gateway import gateway_cache, gateway_settings, providers
from .generations import (
    GENERATION_AT,
    GENERATION_COLUMNS,
    METADATA_COLUMNS,
    feedback,
    generation_metadata,
    generations,
    runs,
    sequences,
)
from .jobs import JOB_STATES, jobs
from .limits import limit_usage, limits
from .pipelines import functions, pipelines
from .prompts import PROMPT_COLUMNS, managed_prompts, prompt_labels, prompt_versions
from .retention import retention_policies
from .rollups import rollup_daily_keys, rollup_hourly, rollup_latency
from .views import saved_views, user_preferences

__all__ = [
    "install",
    "saved_views",
    "user_preferences",
    "limit_usage",
    "limits",
    "retention_policies",
    "scores",
    "score_latest",
    "rollup_scores",
    "experiments",
    "experiment_items",
    "evaluators",
    "evaluator_versions",
    "datasets",
    "dataset_items",
    "GENERATION_AT",
    "GENERATION_COLUMNS",
    "JOB_STATES",
    "METADATA_COLUMNS",
    "PROMPT_COLUMNS",
    "api_keys",
    "audit_log",
    "environments",
    "feedback",
    "functions",
    "pipelines",
    "gateway_cache",
    "gateway_settings",
    "generation_metadata",
    "generations",
    "jobs",
    "login_throttle",
    "managed_prompts",
    "metadata",
    "projects",
    "prompt_labels",
    "prompt_versions",
    "providers",
    "rollup_daily_keys",
    "rollup_hourly",
    "rollup_latency",
    "runs",
    "sequences",
    "sessions",
    "users",
]
