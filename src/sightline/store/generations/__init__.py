"""Generations, runs and feedback: the ingest hot path (records, ingest, pricing, rollups) and its reads
(queries, runs, export, analytics)."""
