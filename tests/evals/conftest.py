"""The app over HTTP with a local upstream for LLM judges; the test runs the job runner itself."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sightline.jobs import Runner
from sightline.settings import Settings
from sightline.store import Database
from sightline.store.access.projects import create_key
from tests.fake_openai import FakeOpenAI


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    yield fake
    fake.close()


@dataclass
class EvalApi:
    http: httpx.AsyncClient
    db: Database
    jobs: Runner
    settings: Settings
    key: str
    app: Any

    async def ingest(self, generations: list[dict[str, Any]]) -> None:
        batch = [{"type": "generation", "body": g} for g in generations]
        for i in range(0, len(batch), 500):
            r = await self.http.post("/api/ingest", json={"batch": batch[i : i + 500]})
            assert r.status_code == 200, r.text
            assert all(x["status"] in (200, 201) for x in r.json()["results"]), r.text

    async def run_jobs(self) -> None:
        """Evaluate online now (not only once a period, as the periodic job does), and run what is due."""
        await self.jobs.enqueue("evals.online")
        await self.jobs.run_once()

    async def evaluator(self, **body: Any) -> int:
        r = await self.http.post("/api/evaluators", json=body)
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    async def scores_of(self, generation_id: str) -> list[dict[str, Any]]:
        r = await self.http.get("/api/scores", params={"generationId": generation_id})
        return list(r.json()["data"])


@pytest.fixture
def functions_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "functions"
    folder.mkdir()
    return folder


@pytest.fixture
async def evals_api(database_url: str, upstream: FakeOpenAI, functions_dir: Path) -> AsyncIterator[EvalApi]:
    from sightline.server.app import create_app

    settings = Settings(
        functions_dir=functions_dir,
        database_url=database_url,
        key_cache_seconds=0,
        upstream_url=upstream.base_url,
        upstream_api_key="sk-test",
        eval_batch=50,
        job_backoff_seconds=0,
    )
    app = create_app(settings)
    db: Database = app.state.db
    async with app.router.lifespan_context(app):
        with db.transaction() as conn:
            secret, _ = create_key(conn, "demo", "dev")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://sightline.test",
            headers={"Authorization": f"Bearer {secret}"},
        ) as http:
            yield EvalApi(http, db, app.state.jobs, settings, secret, app)
