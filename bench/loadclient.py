"""A fast HTTP/1.1 keep-alive load client on raw asyncio sockets (stdlib only).

httpx is too slow to be a fair load generator (it tops out near the proxy's own throughput), so
the benchmarks drive servers with this: one persistent connection per concurrent worker, opened
before the clock starts; each loop is bounded by a request count and a deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Result:
    label: str
    concurrency: int
    latencies_ms: list[float]
    errors: int
    seconds: float

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")


def build_request(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise SystemExit("only loopback targets are allowed")
    lines = [f"POST {parts.path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
             f"Content-Length: {len(body)}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(length)
    return status


async def _worker(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], requests: Iterator[bytes],
                  count: int, deadline: float, latencies: list[float], errors: list[int]) -> None:
    reader, writer = conn
    try:
        for _ in range(count):
            if time.perf_counter() > deadline:
                return
            request = next(requests)
            start = time.perf_counter()
            writer.write(request)
            try:
                status = await asyncio.wait_for(_read_response(reader), timeout=30)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                errors.append(1)
                return
            if status == 200:
                latencies.append((time.perf_counter() - start) * 1000)
            else:
                errors.append(status)
    finally:
        writer.close()


async def run(label: str, url: str, body: bytes | Sequence[bytes], concurrency: int, total: int,
              max_seconds: float = 60.0, headers: dict[str, str] | None = None) -> Result:
    """Send `total` requests over `concurrency` connections: `body` every time, or each body of a
    sequence once, in order (at least as many as the requests sent; every request is built before
    the clock starts, so the client's cost per request is the same either way)."""
    per_worker = max(1, total // concurrency)
    bodies = [body] if isinstance(body, bytes) else list(body)
    if len(bodies) > 1 and len(bodies) < per_worker * concurrency:
        raise ValueError(f"{len(bodies)} bodies for {per_worker * concurrency} requests")
    built = [build_request(url, b, headers) for b in bodies]
    host, port = built[0][0], built[0][1]
    requests = itertools.repeat(built[0][2]) if len(built) == 1 else iter([r for _, _, r in built])
    latencies: list[float] = []
    errors: list[int] = []
    conns = [await asyncio.open_connection(host, port) for _ in range(concurrency)]
    start = time.perf_counter()
    await asyncio.gather(*(
        _worker(conn, requests, per_worker, start + max_seconds, latencies, errors) for conn in conns
    ))
    return Result(label, concurrency, latencies, len(errors), time.perf_counter() - start)
