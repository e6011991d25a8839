"""The gateway's HTTP/1.1 client against small scripted servers: framing, keep-alive, timeouts, TLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from sightline.gateway.forwarding.httpclient import ConnectError, HTTPClient, ProtocolError, ReadTimeout
from tests.conftest import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


@asynccontextmanager
async def server(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[dict[str, int]]:
    """A server on 127.0.0.1 running ``handler`` per connection; yields counters."""
    counts = {"connections": 0}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts["connections"] += 1
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    counts["port"] = srv.sockets[0].getsockname()[1]
    async with srv:
        yield counts


def answer(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
        len(body),
        extra,
        body,
    )


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        _, body = await read_request(reader)
        writer.write(answer(b'{"echo": %d}' % len(body)))
        await writer.drain()


async def test_requests_reuse_one_kept_alive_connection() -> None:
    async with server(keep_answering) as srv:
        client = HTTPClient(read_timeout=5)
        url = f"http://127.0.0.1:{srv['port']}/v1/chat/completions?x=1"
        for size in (0, 10, 1000):
            response = await client.request("POST", url, {"content-type": "application/json"}, b"x" * size)
            assert response.status == 200 and response.header(b"content-type") == b"application/json"
            assert await response.read() == b'{"echo": %d}' % size
        assert srv["connections"] == 1
        await client.aclose()


async def test_chunked_and_until_close_bodies_are_read_and_streamed() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in (b"data: 1\n\n", b"data: 2\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        await read_request(reader)  # the connection is kept for a second request
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
        await writer.drain()

    async with server(chunked) as srv:
        client = HTTPClient(read_timeout=5)
        url = f"http://127.0.0.1:{srv['port']}/s"
        response = await client.request("POST", url, {}, b"{}")
        assert [c async for c in response.chunks()] == [b"data: 1\n\n", b"data: 2\n\n"]
        response = await client.request("GET", url, {})
        assert await response.read() == b"until the end"
        assert srv["connections"] == 1
        await client.aclose()


async def test_a_kept_alive_connection_the_server_closed_is_replaced() -> None:
    async def one_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"{}"))  # says nothing of closing, then closes
        await writer.drain()

    async with server(one_per_connection) as srv:
        client = HTTPClient(read_timeout=5)
        url = f"http://127.0.0.1:{srv['port']}/"
        for _ in range(3):
            response = await client.request("POST", url, {}, b"{}")
            assert await response.read() == b"{}"
            await asyncio.sleep(0.05)  # the close reaches the client
        assert srv["connections"] == 3
        await client.aclose()


async def test_a_request_the_server_dropped_on_a_kept_alive_connection_is_sent_again() -> None:
    async def drops_the_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"{}"))
        await writer.drain()
        await read_request(reader)  # then closes without answering, as a server timing out idle ones does

    async with server(drops_the_second) as srv:
        client = HTTPClient(read_timeout=5)
        url = f"http://127.0.0.1:{srv['port']}/"
        for _ in range(2):
            response = await client.request("POST", url, {}, b"{}")
            assert await response.read() == b"{}"
        assert srv["connections"] == 2
        await client.aclose()


async def test_failures() -> None:
    client = HTTPClient(read_timeout=0.2, connect_timeout=2)
    with pytest.raises(ConnectError):
        await client.request("GET", f"http://127.0.0.1:{free_port()}/", {})

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with server(silent) as srv:
        with pytest.raises(ReadTimeout):
            await client.request("POST", f"http://127.0.0.1:{srv['port']}/", {}, b"{}")

    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b")
        await writer.drain()

    async with server(short) as srv:
        response = await client.request("POST", f"http://127.0.0.1:{srv['port']}/", {}, b"{}")
        with pytest.raises(ProtocolError):
            await response.read()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async with server(garbage) as srv:
        with pytest.raises(ProtocolError):
            await client.request("POST", f"http://127.0.0.1:{srv['port']}/", {}, b"{}")
        with pytest.raises(ProtocolError):
            await client.request(
                "POST", f"http://127.0.0.1:{srv['port']}/", {"x-evil": "a\r\nHost: b"}, b"{}"
            )
    await client.aclose()


async def test_big_bodies_and_leaving_a_stream_early() -> None:
    big = b"z" * (5 << 20)
    stopped = asyncio.Event()

    async def sender(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        if b"/big" in head:
            writer.write(answer(big))
            await writer.drain()
            return
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        try:
            for _ in range(10_000):
                writer.write(b"5\r\nchunk\r\n")
                await writer.drain()
                await asyncio.sleep(0.001)
        finally:
            stopped.set()

    async with server(sender) as srv:
        client = HTTPClient(read_timeout=5)
        response = await client.request("POST", f"http://127.0.0.1:{srv['port']}/big", {}, b"{}")
        assert await response.read() == big  # more than the back-pressure threshold, read whole
        response = await client.request("POST", f"http://127.0.0.1:{srv['port']}/stream", {}, b"{}")
        async for _ in response.chunks():
            break
        response.close()  # the caller left: the connection goes, and the server stops sending
        await asyncio.wait_for(stopped.wait(), 5)
        await client.aclose()


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


async def test_https(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    async with server(keep_answering, tls=server_tls) as srv:
        url = f"https://127.0.0.1:{srv['port']}/v1/embeddings"
        trusting = HTTPClient(read_timeout=5, ssl_context=ssl.create_default_context(cafile=str(cert)))
        for _ in range(2):
            response = await trusting.request("POST", url, {}, b"{}")
            assert await response.read() == b'{"echo": 2}'
        assert srv["connections"] == 1
        await trusting.aclose()
        with pytest.raises(ConnectError):  # the system's CAs do not know this certificate
            await HTTPClient(read_timeout=5).request("POST", url, {}, b"{}")
