"""Logging in, and the admins' pages: users, keys, providers, the audit log, retention and limits."""
