"""Retention and erasure: policies per project and environment, and the batched writes that delete or
anonymise generations with everything that hangs on them."""

from .policies import (
    ACTIONS,
    AdvanceAnonymised,
    DeleteUserFeedback,
    Policy,
    RecordRetentionRun,
    RemovePolicy,
    SetPolicy,
    anonymise_batch,
    check_policy,
    count_expired,
    expired_batch,
    get_policies,
    max_seq,
    user_feedback,
    user_generations,
)
from .purge import (
    ANONYMISED,
    AnonymiseGenerations,
    DeleteGenerations,
    DeleteRuns,
    PurgeCache,
    anonymised_body,
)

__all__ = [
    "ACTIONS",
    "ANONYMISED",
    "AdvanceAnonymised",
    "AnonymiseGenerations",
    "DeleteGenerations",
    "DeleteRuns",
    "DeleteUserFeedback",
    "Policy",
    "PurgeCache",
    "RecordRetentionRun",
    "RemovePolicy",
    "SetPolicy",
    "anonymise_batch",
    "anonymised_body",
    "check_policy",
    "count_expired",
    "expired_batch",
    "get_policies",
    "max_seq",
    "user_feedback",
    "user_generations",
]
