"""The job queue: one table, changed only through the single writer, claimed under leases."""

from .queue import (
    Claim,
    Complete,
    Enqueue,
    Fail,
    Job,
    LeaseLost,
    Outcome,
    Progress,
    PruneFinished,
    PruneKind,
    Release,
    Renew,
    get_job,
    job_wire,
    others_running,
)

__all__ = [
    "Claim",
    "Complete",
    "Enqueue",
    "Fail",
    "Job",
    "LeaseLost",
    "Outcome",
    "PruneFinished",
    "PruneKind",
    "Progress",
    "Release",
    "Renew",
    "get_job",
    "job_wire",
    "others_running",
]
