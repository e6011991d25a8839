"""The container's health check: ``GET /healthz`` on the local server answers 200 (exit 0), else exit 1."""

import os
import sys
import urllib.request

port = os.environ.get("SIGHTLINE_PORT", "8000")
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:  # noqa: S310
        sys.exit(0 if answer.status == 200 else 1)
except OSError:
    sys.exit(1)
