"""Who may do what: projects, environments, API keys, users."""
