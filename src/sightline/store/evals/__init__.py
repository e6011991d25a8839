"""Evaluation's storage: scores (with their latest per name and hourly totals), evaluators and their
versions, datasets and experiments. Reads take a connection; writes are operations for the writer."""

from .scores import (
    FEEDBACK_SCORES,
    RecordScores,
    feedback_scores,
    latest_run_scores,
    latest_scores,
    score_history,
    score_row,
    score_wire,
    write_scores,
)

__all__ = [
    "FEEDBACK_SCORES",
    "RecordScores",
    "feedback_scores",
    "latest_run_scores",
    "latest_scores",
    "score_history",
    "score_row",
    "score_wire",
    "write_scores",
]
