"""The job queue: one table, changed only through the single writer, claimed under leases."""

from .queue import (
    Claim,
    Complete,
    Enqueue,
    Fail,
    Job,
    LeaseLost,
    PruneFinished,
    Release,
    Renew,
    get_job,
    job_wire,
)

__all__ = [
    "Claim",
    "Complete",
    "Enqueue",
    "Fail",
    "Job",
    "LeaseLost",
    "PruneFinished",
    "Release",
    "Renew",
    "get_job",
    "job_wire",
]
