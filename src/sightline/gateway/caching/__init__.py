"""The response cache: canonical cache keys, and entries kept in the database or Redis."""
