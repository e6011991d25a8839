# Sightline: the server, the dashboard (its browser packages built in) and the CLI, as a non-root user.
#   docker build -t sightline .      (compose.yaml builds it for `make up`)

# The dashboard's browser packages, from the npm registry at build time (versions pinned in package-lock.json).
FROM node:20-bookworm-slim AS assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY scripts/assets scripts/assets
RUN mkdir -p src/sightline/server/static && scripts/assets

# The user guide (docs/, served at /guide/), built by MkDocs (the docs extra pins it); its settings page is
# made from the settings object, so the package is installed here too.
FROM python:3.11-slim-bookworm AS guide
WORKDIR /build
COPY pyproject.toml README.md mkdocs.yml ./
COPY src src
COPY docs docs
RUN python -m venv /opt/guide \
    && /opt/guide/bin/pip install --no-cache-dir '.[server,docs]' \
    && NO_MKDOCS_2_WARNING=1 /opt/guide/bin/mkdocs build --quiet --strict

# The Python package and its server dependencies, built into a virtual environment.
FROM python:3.11-slim-bookworm AS build
WORKDIR /build
RUN python -m venv /opt/sightline
COPY pyproject.toml README.md ./
COPY src src
COPY --from=assets /build/src/sightline/server/static/vendor src/sightline/server/static/vendor
COPY --from=guide /build/src/sightline/server/guide_site src/sightline/server/guide_site
RUN /opt/sightline/bin/pip install --no-cache-dir '.[server]'

FROM python:3.11-slim-bookworm
ENV PATH=/opt/sightline/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SIGHTLINE_HOME=/data \
    SIGHTLINE_HOST=0.0.0.0 \
    SIGHTLINE_PORT=8000
RUN groupadd --system --gid 10001 sightline \
    && useradd --system --uid 10001 --gid sightline --home-dir /data --shell /usr/sbin/nologin sightline \
    && mkdir -p /data \
    && chown sightline:sightline /data
COPY --from=build /opt/sightline /opt/sightline
COPY deploy/entrypoint.sh /usr/local/bin/sightline-entrypoint
COPY deploy/healthcheck.py /usr/local/bin/sightline-healthcheck
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["python", "/usr/local/bin/sightline-healthcheck"]
ENTRYPOINT ["/usr/local/bin/sightline-entrypoint"]
CMD ["serve"]
