"""Evaluators: rules (pure), the LLM judge and function evaluators, and the background jobs that run
them (online over new generations, backfills over past ones, experiments over datasets)."""
