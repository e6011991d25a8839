"""Generations, runs and feedback.

The write side is this package's own: ``records`` (wire records to rows), ``ingest`` (the writer's
operations), ``sequence`` (the ingest numbering), ``rollups`` and ``pricing``, and ``search`` (the
full-text index, kept in the writer's transactions). What is read is in ``reads/``: pages of rows
(``queries``, ``listing``, ``ordering``), ``totals``, ``analytics``, ``export``, ``runs`` and ``chats``.
"""
