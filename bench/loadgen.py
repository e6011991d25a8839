"""A lean closed-loop HTTP/1.1 load generator over asyncio streams, for the benchmarks.

Each connection sends a request, waits for the whole response, and sends the next (keep-alive).
Request bytes are prepared up front so the generator spends almost nothing per request and the
server, not the client, is what is measured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Result:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def request_bytes(method: str, path: str, host: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def run(
    host: str,
    port: int,
    requests: Callable[[int], bytes] | Sequence[bytes],
    *,
    connections: int,
    total: int | None = None,
    seconds: float | None = None,
) -> Result:
    """Send ``total`` requests (or for ``seconds``) over ``connections`` connections."""
    result = Result()
    counter = iter(range(10**12))
    pick = requests if callable(requests) else (lambda i: requests[i % len(requests)])
    deadline = time.perf_counter() + seconds if seconds else None

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                i = next(counter)
                if total is not None and i >= total:
                    return
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                data = pick(i)
                started = time.perf_counter()
                writer.write(data)
                try:
                    status = await _read_response(reader)
                except (ConnectionError, asyncio.IncompleteReadError):
                    # Counted as an error (status 0) and the connection made anew: a load test reports
                    # what the server did rather than stopping at the first dropped connection.
                    result.errors += 1
                    result.statuses[0] = result.statuses.get(0, 0) + 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                result.latencies.append(time.perf_counter() - started)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                result.requests += 1
                if status >= 400:
                    result.errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    result.seconds = time.perf_counter() - started
    return result
