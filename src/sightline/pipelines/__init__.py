"""Prompts and Python functions composed into pipelines: the expression language, the function registry and
loader, and execution through the gateway."""
