"""Managed prompts: versions (text or chat, model, parameters), labels, and the recorded templates
beside them. Reads take a connection; writes are operations for the single writer."""

from __future__ import annotations

from .drafts import PromptDraft, check_label, check_parameters, parse_draft
from .managed import Prompt, PromptSummary, get_prompt, list_prompts, prompt_history, prompt_names
from .versions import TemplateVersion, VersionStats, last_model, numbered_versions, version_stats
from .writes import MoveLabel, Saved, SavePrompt, check_namespace

__all__ = [
    "MoveLabel",
    "Prompt",
    "PromptDraft",
    "PromptSummary",
    "SavePrompt",
    "Saved",
    "TemplateVersion",
    "VersionStats",
    "check_label",
    "check_namespace",
    "check_parameters",
    "get_prompt",
    "last_model",
    "list_prompts",
    "numbered_versions",
    "parse_draft",
    "prompt_history",
    "prompt_names",
    "version_stats",
]
