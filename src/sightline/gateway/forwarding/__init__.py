"""Forwarding to the model provider: the gateway's own HTTP client, upstream targets, stored providers, and
server-sent events passed through chunk by chunk."""
