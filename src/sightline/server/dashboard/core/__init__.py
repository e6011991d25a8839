"""How a dashboard page is made: templates, errors, who is looking, sessions, formatting, time ranges."""
