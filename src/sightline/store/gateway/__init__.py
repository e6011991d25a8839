"""What the gateway keeps: upstream providers, per-project gateway settings, the response cache."""
