# The deployment's everyday commands (compose.yaml). `make help` lists them.
COMPOSE ?= docker compose
RUN = $(COMPOSE) run --rm --no-deps sightline

.PHONY: help up down logs backup restore create-admin

help:
	@echo "make up | down | logs | backup | restore file=PATH | create-admin"

up:  ## build and start Sightline with PostgreSQL and Redis, in the background
	$(COMPOSE) up -d --build

down:  ## stop everything (the data stays in its volumes)
	$(COMPOSE) down

logs:
	$(COMPOSE) logs -f sightline

backup:  ## a dated backup file in ./backups
	mkdir -p backups
	$(RUN) backup /data/backups

restore:  ## make restore file=backups/sightline-....jsonl.gz
	@test -n "$(file)" || (echo "usage: make restore file=PATH" && exit 2)
	$(RUN) restore /data/backups/$(notdir $(file))

create-admin:  ## asks for a username and password
	$(COMPOSE) run --rm sightline create-admin
