"""``/metrics`` of a real ``sightline serve``: every generation counted whichever road it came by (ingest,
the gateway), only once, with bounded labels; gateway calls by status and cache; the writer; the jobs."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import stop_server
from tests.fake_openai import FakeOpenAI
from tests.gateway.conftest import GatewayServer, launch
from tests.server.test_ingest import generation


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake: FakeOpenAI) -> Iterator[GatewayServer]:
    made = launch(tmp_path_factory.mktemp("metrics"), fake.base_url)
    try:
        yield made
    finally:
        stop_server(made.process)


def _value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_every_generation_is_counted_once_whatever_its_road(server: GatewayServer) -> None:
    key = server.new_key()
    headers = {"Authorization": f"Bearer {key}"}
    gens = [generation(model={"id": "gpt-4o", "provider": "openai"}) for _ in range(2)]
    batch = {"batch": [{"type": "generation", "body": g} for g in gens]}
    assert httpx.post(f"{server.url}/api/ingest", json=batch, headers=headers).status_code == 200
    assert (
        httpx.post(f"{server.url}/api/ingest", json=batch, headers=headers).status_code == 200
    )  # again: no-op
    client = server.client(key)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    server.generations(key, 3)
    time.sleep(0.3)
    text = httpx.get(f"{server.url}/metrics").text
    assert _value(text, "sightline_generations_total", model="gpt-4o", status="ok") == 2
    assert _value(text, "sightline_generations_total", model="gpt-4o-mini") == 1
    assert _value(text, "sightline_tokens_total", model="gpt-4o", kind="prompt") == 2000
    assert _value(text, "sightline_cost_usd_total", model="gpt-4o") > 0
    assert _value(text, "sightline_gateway_requests_total", status="200") == 1
    assert _value(text, "sightline_generation_latency_seconds_count", model="gpt-4o-mini") == 1
    assert _value(text, "sightline_write_seconds_count") >= 3
    assert re.search(r'sightline_jobs\{kind="[^"]+",state="[a-z]+"\}', text), text[-2000:]
    assert "alice" not in text  # no user ids as labels


def test_the_grafana_board_uses_only_metrics_the_server_exposes(server: GatewayServer) -> None:
    board = json.loads(
        (Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json").read_text()
    )
    exposed = httpx.get(f"{server.url}/metrics").text
    names = {
        line.split("{")[0].split(" ")[0] for line in exposed.splitlines() if line.startswith("sightline_")
    }
    names |= {line.split()[2] for line in exposed.splitlines() if line.startswith("# TYPE sightline_")}
    used = set()
    for panel in board["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used |= set(re.findall(r"sightline_[a-z_]+", target["expr"]))
    missing = {name for name in used if name not in names and name.rsplit("_", 1)[0] not in names}
    assert not missing, missing
    assert len(used) >= 10
