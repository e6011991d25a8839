"""The gateway's calls to providers on corporate networks: a forward proxy from the standard variables,
a CA bundle of its own, and a cap on open connections per provider origin.

Real ``sightline serve`` processes, the real ``openai`` client, a real forward proxy (proxy.py, in
a process of its own) and a TLS provider: the fake one behind a relay of this module that ends TLS
with a trustme certificate and counts the connections it has open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
import trustme
from pydantic import ValidationError

from sightline.errors import UpstreamError
from sightline.gateway.forwarding.httpclient import HTTPClient, PoolTimeout
from sightline.gateway.forwarding.proxied import environment_proxies, proxy_for
from sightline.gateway.forwarding.upstream import Upstream
from sightline.settings import Settings
from sightline.store import Database
from sightline.store.access.projects import create_key
from sightline.store.gateway.providers import add_provider
from tests.conftest import free_port, start_server, stop_server
from tests.fake_openai import FakeOpenAI
from tests.gateway.conftest import SECRET, GatewayServer, launch, unique, wait_for

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def proxy_env(*, http: str = "", https: str = "", no: str = "") -> dict[str, str]:
    """The proxy variables in both cases (lowercase ones win, so inherited ones are blanked too)."""
    values = {"http_proxy": http, "https_proxy": https, "all_proxy": "", "no_proxy": no}
    return {**values, **{name.upper(): value for name, value in values.items()}}


def clear_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


class Relay:
    """A TCP relay to the fake provider in a thread of this process: it ends TLS when given a context,
    and counts the connections it has open, and the most it ever had at once."""

    def __init__(self, target_port: int, tls: ssl.SSLContext | None = None) -> None:
        self.target_port = target_port
        self.tls = tls
        self.open = 0
        self.most = 0
        self.accepted = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="relay", daemon=True)
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self.most = max(self.most, self.open)
        writers = [writer]
        try:
            to_reader, to_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            writers.append(to_writer)
            pipes = [
                asyncio.ensure_future(self._pipe(reader, to_writer)),
                asyncio.ensure_future(self._pipe(to_reader, writer)),
            ]
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pipe in pipes:
                    pipe.cancel()
        finally:
            for w in writers:
                w.transport.abort()
            self.open -= 1

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()

    def __enter__(self) -> Relay:
        self._thread.start()

        async def start() -> int:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
            return int(self._server.sockets[0].getsockname()[1])

        self.port = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class Proxy:
    """proxy.py, a real HTTP/HTTPS forward proxy, in a process of its own on a free port.

    At DEBUG it logs ``Connecting to upstream HOST:PORT`` as it opens each connection onward (a
    ``CONNECT`` tunnel, or a plain request's first), before any answer can come back.
    """

    def __init__(self, folder: Path) -> None:
        self.log = folder / "proxy.log"
        port_file = folder / "proxy.port"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "proxy",
                "--hostname",
                "127.0.0.1",
                "--port",
                "0",
                "--port-file",
                str(port_file),
                "--num-workers",
                "1",
                "--num-acceptors",
                "1",
                "--log-level",
                "DEBUG",
                "--log-file",
                str(self.log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its acceptor processes are stopped with it
        )
        self.port = int(wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 30) or 0)
        assert self.port, "proxy.py did not start"
        self.url = f"http://127.0.0.1:{self.port}"

    def mark(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def since(self, mark: int) -> str:
        with self.log.open("rb") as f:
            f.seek(mark)
            return f.read().decode(errors="replace")

    def saw(self, mark: int, port: int) -> bool:
        """Whether the proxy connected onward to 127.0.0.1:``port`` since ``mark``."""
        return bool(wait_for(lambda: f"Connecting to upstream 127.0.0.1:{port}" in self.since(mark), 5))

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    running = Proxy(tmp_path_factory.mktemp("proxy"))
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    """A throwaway certificate authority, and its certificate as a PEM file."""
    authority = trustme.CA()
    pem = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(pem))
    return authority, pem


def tls(ca: tuple[trustme.CA, Path]) -> ssl.SSLContext:
    """A server's TLS context with a certificate for 127.0.0.1 and localhost, signed by ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca[0].issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def corporate(
    fake: FakeOpenAI, proxy: Proxy, ca: tuple[trustme.CA, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """A gateway on a corporate network: the proxy for every provider but those on ``localhost``, the
    private CA trusted, at most 2 connections per provider origin. Each test stores providers of its
    own (a project each), so one process shows both routes: ``127.0.0.1`` proxied, ``localhost`` not."""
    env = {
        **proxy_env(http=proxy.url, https=proxy.url, no="localhost"),
        "SIGHTLINE_UPSTREAM_CA_BUNDLE": str(ca[1]),
        "SIGHTLINE_UPSTREAM_MAX_CONNECTIONS": "2",
    }
    with gateway_for(tmp_path_factory.mktemp("corporate"), fake.base_url, **env) as server:
        yield server


@contextlib.contextmanager
def gateway_for(tmp_path: Path, upstream_url: str, **env: str) -> Iterator[GatewayServer]:
    server = launch(tmp_path, upstream_url, **env)
    try:
        yield server
    finally:
        stop_server(server.process)


def key_for(server: GatewayServer, base_url: str) -> str:
    """A key of a fresh project whose default provider is ``base_url``."""
    db = Database(server.database_url)
    try:
        with db.transaction() as conn:
            secret, key = create_key(conn, unique(), "dev")
            add_provider(conn, key.project_id, "provider", base_url, "sk-provider", SECRET)
    finally:
        db.engine.dispose()
    return secret


def ask(server: GatewayServer, key: str, prompt: str = "hello there") -> str:
    client = server.client(key, timeout=60)
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
    )
    return reply.choices[0].message.content or ""


def ask_streamed(server: GatewayServer, key: str, prompt: str, model: str = "gpt-4o-mini") -> str:
    client = server.client(key, timeout=60)
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], stream=True
    )
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def calls_work(server: GatewayServer, key: str) -> bool:
    assert ask(server, key, "a plain call") == "Fake reply to: a plain call"
    assert ask_streamed(server, key, "a streamed call") == "Fake reply to: a streamed call"
    return True


async def _held_server(release: asyncio.Event, counts: dict[str, int]) -> asyncio.Server:
    """Answers each request once ``release`` is set, keeping the connection alive."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts["connections"] += 1
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await release.wait()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


# The proxy variables


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_each_provider_origin_goes_through_the_proxy_unless_no_proxy_names_it(
    corporate: GatewayServer, fake: FakeOpenAI, proxy: Proxy, ca: tuple[trustme.CA, Path], scheme: str
) -> None:
    context = tls(ca) if scheme == "https" else None
    with Relay(fake.port, context) as proxied, Relay(fake.port, context) as direct:
        mark = proxy.mark()
        assert calls_work(corporate, key_for(corporate, f"{scheme}://127.0.0.1:{proxied.port}/v1"))
        assert proxy.saw(mark, proxied.port)  # https: a CONNECT tunnel, trusting the CA bundle

        mark = proxy.mark()
        assert calls_work(corporate, key_for(corporate, f"{scheme}://localhost:{direct.port}/v1"))
        assert direct.accepted >= 1 and f":{direct.port}" not in proxy.since(mark)


def test_an_unreachable_proxy_is_a_502_unless_the_variables_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clear_proxy_variables(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens there

    async def check() -> None:
        release = asyncio.Event()
        release.set()
        async with await _held_server(release, {"connections": 0}) as srv:
            url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/v1/models"
            proxied = Upstream(5)
            with pytest.raises(UpstreamError, match="through the proxy 127.0.0.1") as raised:
                await proxied.send("GET", url, {}, None)
            assert raised.value.status_code == 502
            await proxied.aclose()
            direct = Upstream(5, trust_env=False)  # SIGHTLINE_UPSTREAM_TRUST_ENV=false
            assert await (await direct.send("GET", url, {}, None)).read() == b"ok"
            await direct.aclose()

    asyncio.run(check())


def test_proxies_are_chosen_per_origin_as_urllib_reads_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxy_variables(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://upper:3128")
    monkeypatch.setenv("https_proxy", "proxy.corp:3128")  # lowercase wins; no scheme: http
    monkeypatch.setenv("ALL_PROXY", "http://all.corp:8080")
    monkeypatch.setenv("NO_PROXY", "localhost, .internal.example,10.1.2.3")
    proxies = environment_proxies()
    assert proxy_for("https://api.openai.com", proxies) == "http://proxy.corp:3128"
    assert proxy_for("http://api.example.com:8000", proxies) == "http://all.corp:8080"
    for direct in ("http://localhost:8000", "https://llm.internal.example", "https://internal.example"):
        assert proxy_for(direct, proxies) is None
    assert proxy_for("http://10.1.2.3:11434", proxies) is None
    monkeypatch.setenv("NO_PROXY", "*")
    assert proxy_for("https://api.openai.com", environment_proxies()) is None
    monkeypatch.setenv("https_proxy", "ftp://proxy.corp:21")
    with pytest.raises(ValueError, match="HTTPS_PROXY"):
        environment_proxies()


# The CA bundle


def test_a_private_ca_is_refused_without_the_bundle_and_trusted_through_ssl_cert_file(
    tmp_path: Path, fake: FakeOpenAI, proxy: Proxy, ca: tuple[trustme.CA, Path]
) -> None:
    env = proxy_env(https=proxy.url, no="localhost")  # 127.0.0.1 through the proxy, localhost direct
    with Relay(fake.port, tls(ca)) as relay:
        origins = [f"https://127.0.0.1:{relay.port}/v1", f"https://localhost:{relay.port}/v1"]
        with gateway_for(tmp_path, fake.base_url, **env) as server:
            for origin in origins:
                with pytest.raises(openai.APIStatusError) as refused:
                    ask(server, key_for(server, origin))
                assert refused.value.status_code == 502
                assert "certificate" in refused.value.message.lower()
        assert relay.accepted == 0  # no handshake succeeded: nothing reached the provider

        # OpenSSL's own variable replaces the system's CAs, for both clients (httpx gets our context).
        with gateway_for(tmp_path, fake.base_url, SSL_CERT_FILE=str(ca[1]), **env) as server:
            for origin in origins:
                assert calls_work(server, key_for(server, origin))


def test_a_ca_bundle_that_cannot_be_read_stops_the_server(tmp_path: Path, fake: FakeOpenAI) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(RuntimeError, match=r"SIGHTLINE_UPSTREAM_CA_BUNDLE names .*missing\.pem"):
        start_server(
            f"sqlite:///{tmp_path / 'gateway.db'}",
            tmp_path / "serve.log",
            env={"SIGHTLINE_UPSTREAM_CA_BUNDLE": str(missing), "SIGHTLINE_UPSTREAM_URL": fake.base_url},
        )
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    with pytest.raises(ValidationError, match="SIGHTLINE_UPSTREAM_CA_BUNDLE names .* no PEM certificate"):
        Settings(secret_key="s" * 40, upstream_ca_bundle=not_pem)


# The connection cap


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"], ids=["direct", "proxied"])
def test_no_more_connections_open_to_a_provider_than_the_cap(
    corporate: GatewayServer, fake: FakeOpenAI, ca: tuple[trustme.CA, Path], host: str
) -> None:
    # Proxied: CONNECT tunnels to a TLS provider, one connection onward for each of the gateway's.
    context, scheme = (tls(ca), "https") if host == "127.0.0.1" else (None, "http")
    with Relay(fake.port, context) as relay:
        key = key_for(corporate, f"{scheme}://{host}:{relay.port}/v1")
        prompts = [f"slow stream number {n}" for n in range(12)]
        with ThreadPoolExecutor(len(prompts)) as pool:
            # "slow": the fake waits 0.05 s between chunks, so the streams overlap
            replies = list(pool.map(lambda p: ask_streamed(corporate, key, p, model="slow"), prompts))
        assert replies == [f"Fake reply to: {p}" for p in prompts]
        assert 1 <= relay.most <= 2, relay.most  # SIGHTLINE_UPSTREAM_MAX_CONNECTIONS=2


async def test_a_request_past_the_cap_waits_its_turn_then_times_out() -> None:
    release, counts = asyncio.Event(), {"connections": 0}
    async with await _held_server(release, counts) as srv:
        url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/v1/models"
        client = HTTPClient(read_timeout=10, connect_timeout=0.3, max_connections=1)
        first = asyncio.ensure_future(client.request("GET", url, {}))
        await asyncio.sleep(0.05)
        with pytest.raises(PoolTimeout, match="all 1 connections"):
            await client.request("GET", url, {})  # the one connection stays busy
        waiting = asyncio.ensure_future(client.request("GET", url, {}))
        cancelled = asyncio.ensure_future(client.request("GET", url, {}))
        await asyncio.sleep(0.05)
        cancelled.cancel()  # its turn passes on, nothing is lost
        release.set()
        assert await (await first).read() == b"ok"
        assert await (await waiting).read() == b"ok"
        third = await client.request("GET", url, {})
        assert await third.read() == b"ok"
        assert counts["connections"] == 1  # the released connection was handed on each time
        await client.aclose()


async def test_a_closed_connection_hands_its_slot_to_the_next_waiter() -> None:
    counts = {"open": 0, "most": 0, "answered": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts["open"] += 1
        counts["most"] = max(counts["most"], counts["open"])
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(0.05)
        counts["answered"] += 1
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()
        counts["open"] -= 1

    async with await asyncio.start_server(handle, "127.0.0.1", 0) as srv:
        url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/v1/models"
        client = HTTPClient(read_timeout=10, connect_timeout=10, max_connections=1)

        async def one() -> bytes:
            return await (await client.request("GET", url, {})).read()

        assert await asyncio.gather(*(one() for _ in range(4))) == [b"ok"] * 4
        assert counts["answered"] == 4 and counts["most"] == 1
        await client.aclose()


def test_the_connection_cap_is_at_least_one() -> None:
    with pytest.raises(ValidationError, match="upstream_max_connections"):
        Settings(secret_key="s" * 40, upstream_max_connections=0)
    assert Settings(secret_key="s" * 40).upstream_max_connections == 1000
