"""The ASGI application: ``create_app(settings)`` builds it, ``sightline serve`` runs it."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp

from .. import __version__, gc_tuning
from ..evals import jobs as evals_jobs
from ..evals.evaluator import Services
from ..gateway import Gateway, KeyLookup
from ..gateway.caching.cache import PURGE_KIND, purge_expired
from ..gateway.limits import PRUNE_USAGE_KIND, prune_usage
from ..jobs import PRUNE_KIND, Handlers, Runner, prune_finished
from ..jobs.retention import RETENTION_KIND, retention_handler
from ..pipelines.sandbox import Sandbox
from ..settings import Settings
from ..store import Database, migrate
from .dashboard import install as install_dashboard
from .errors import install_error_handlers
from .metrics import Metrics
from .routers import (
    aieye,
    apidocs,
    datasets,
    evaluators,
    experiments,
    export,
    feedback,
    generations,
    gentrace,
    guide,
    health,
    ingest,
    jobs,
    libretto,
    limits,
    otel,
    pipelines,
    prompts,
    proxy,
    retention,
    runs,
    scores,
)

__all__ = ["create_app", "job_handlers"]

log = logging.getLogger(__name__)

_SWITCH_INTERVAL = 0.0005  # seconds


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    own_process: bool = False,
    run_jobs: bool | None = None,
) -> FastAPI:
    """A Sightline server over ``settings.database_url`` (or an already open ``database``).

    The database is migrated to the newest schema when the app starts. With ``own_process`` (a
    ``sightline serve`` worker):

    - the database writer runs in a child process when ``settings.writer_process`` says so (by
      default, when the server may use more than one core), so the writer and the event loop never
      wait for each other's GIL;
    - garbage collection is set for a long-running process (``gc_tuning``): what exists by then
      is never walked again, and young collections run less often;
    - threads take turns with the GIL more often (``_SWITCH_INTERVAL``);
    - background jobs run here too (``sightline.jobs``), unless ``settings.jobs_in_serve`` is off
      (``run_jobs`` says so for other apps; tests run their runner themselves).
    """
    settings = settings or Settings()
    db = database or Database(
        settings.database_url,
        write_batch_max=settings.write_batch_max,
        writer_process=own_process and settings.writer_process,
        query_timeout=settings.query_timeout,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        migrate(db.engine)
        db.start()
        if own_process:
            gc_tuning.for_long_running_process()
            # Threads beside the event loop (the pipe to the writer process, database reads in the
            # thread pool, the writer itself when it is a thread) hand the GIL back at every blocking
            # call and must then wait for the event loop's thread to let it go: at most this long,
            # instead of the 5 ms default.
            sys.setswitchinterval(_SWITCH_INTERVAL)
        log.info("sightline %s serving %s", __version__, db.dialect)
        if (own_process if run_jobs is None else run_jobs) and settings.jobs_in_serve:
            runner.start()
        try:
            yield
        finally:
            await runner.stop()  # jobs still running are given back for another process
            await gateway.aclose()  # hands its last records to the writer before it stops
            sandbox.close()
            db.close()

    app = FastAPI(
        title="Sightline",
        version=__version__,
        description="Self-hosted observability for applications that call large language models.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc are routers.apidocs: their scripts served from here, not a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.keys = KeyLookup(db, settings.key_cache_seconds)
    app.state.metrics = Metrics(db)
    gateway = app.state.gateway = Gateway(settings, db, app.state.keys)
    gateway.observers.append(app.state.metrics.call_finished)
    sandbox = app.state.sandbox = Sandbox()  # custom pipeline functions' worker processes, started on use
    services = Services(db, gateway, sandbox, settings)
    # Enqueues from any process; runs jobs only once started (in the lifespan).
    runner = app.state.jobs = Runner.from_settings(db, job_handlers(settings, services), settings)
    install_error_handlers(app)
    app.router.routes.extend(ingest.routes)
    app.router.routes.extend(libretto.routes)  # its events come one per model call: a plain route
    app.router.routes.extend(pipelines.routes)  # POST /api/pipeline/call: each one is a model call or more
    for module in (
        health,
        generations,
        feedback,
        scores,
        evaluators,
        datasets,
        experiments,
        retention,
        limits,
        runs,
        export,
        jobs,
        prompts,
        pipelines,
    ):
        app.include_router(module.router)
    for module in (libretto, gentrace, otel):  # other tools' wire formats (sightline.compat translates)
        app.include_router(module.router)
    install_dashboard(app)
    app.include_router(apidocs.router)
    app.include_router(guide.router)
    app.include_router(aieye.router)
    proxy.install(app, gateway)
    app.openapi = functools.partial(_openapi, app)  # type: ignore[method-assign]
    return app


def job_handlers(settings: Settings, services: Services) -> Handlers:
    """The kinds of background job a Sightline process runs (``serve`` and ``worker`` alike)."""
    handlers = Handlers()
    evals_jobs.add_handlers(handlers, services)
    handlers.add(
        RETENTION_KIND, retention_handler(services.db), every=settings.retention_seconds, max_attempts=1
    )
    # One attempt: a purge that failed is simply done by the next period's.
    handlers.add(PURGE_KIND, purge_expired, every=settings.cache_purge_seconds, max_attempts=1)
    handlers.add(PRUNE_KIND, prune_finished(settings.job_keep_days), every=3600, max_attempts=1)
    handlers.add(PRUNE_USAGE_KIND, prune_usage, every=3600, max_attempts=1)
    return handlers


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's description of its routes, plus the plain ingest routes and the bearer key scheme."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {})
        paths = ingest.openapi_paths(components.setdefault("schemas", {})) | pipelines.openapi_paths()
        for path, item in paths.items():
            schema["paths"].setdefault(path, {}).update(item)
        components.setdefault("securitySchemes", {})["HTTPBearer"] = {"type": "http", "scheme": "bearer"}
        app.openapi_schema = schema
    return app.openapi_schema


def app_from_environment() -> ASGIApp:
    """The app with settings from ``SIGHTLINE_*`` variables (how each ``serve`` worker builds it).

    ``/v1`` requests go to the gateway ahead of the framework's own layers (see ``proxy.ahead_of``).
    """
    return proxy.ahead_of(create_app(Settings(), own_process=True))
