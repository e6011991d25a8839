"""The database itself: connection settings, dialect differences, the single writer (a thread or a
process of its own), migrations and backups."""
