"""The dashboard's tool pages: analytics, prompts, pipelines and functions, evaluations."""
