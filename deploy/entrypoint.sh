#!/bin/sh
# The container's entrypoint: migrate the database (every replica may; migrations are idempotent and
# take the database's lock), then run the command: `serve` by default, or any `sightline` command
# (`docker compose run sightline create-admin`, `... backup /data/backups`, ...).
set -eu
if [ "${1:-serve}" = "serve" ]; then
  sightline migrate
  if [ "$#" -gt 0 ]; then shift; fi
  exec sightline serve --host "${SIGHTLINE_HOST:-0.0.0.0}" --port "${SIGHTLINE_PORT:-8000}" "$@"
fi
exec sightline "$@"
