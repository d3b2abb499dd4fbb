"""A small HTTP/1.1 load generator that runs in its own process.

Raw asyncio sockets with keep-alive on uvloop, not httpx: on a 2-core machine the client
shares the CPU with the server, so the cheaper the client, the more of the measurement is the
server. It is still Python, so `RESULTS.md` reports the client's own ceiling (a trivial endpoint)
next to every number.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from queue import Empty

Request = tuple[str, str, bytes]  # method, path, body


class HttpConnection:
    """One keep-alive connection; responses must carry Content-Length (uvicorn's always do)."""

    def __init__(self, host: str, port: int, headers: dict[str, str] | None = None) -> None:
        self.host, self.port = host, port
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._headers = f"Host: {host}:{port}\r\nContent-Type: application/json\r\n{extra}"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        head = f"{method} {path} HTTP/1.1\r\n{self._headers}Content-Length: {len(body)}\r\n\r\n"
        self._writer.write(head.encode() + body)
        status_line = await self._reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await self._reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self._reader.readexactly(length)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


@dataclass
class LoadResult:
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, one per request
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def _closed_loop(
    host: str,
    port: int,
    requests: Sequence[Request],
    concurrency: int,
    duration: float | None,
    headers: dict[str, str],
    rate: float | None,
) -> LoadResult:
    """`concurrency` connections each send their next request as soon as the last answered,
    or, with `rate`, at its slot in a fixed schedule of `rate` requests/s over all connections.
    On a schedule, latency counts from the slot, not from the send, so a server that falls
    behind is charged for the queue it causes (no coordinated omission)."""
    result = LoadResult()
    position = 0
    started = time.perf_counter()
    deadline = started + duration if duration else float("inf")

    async def one_connection(index: int) -> None:
        nonlocal position
        conn = HttpConnection(host, port, headers)
        sent = 0
        try:
            while time.perf_counter() < deadline:
                if duration is None and position >= len(requests):
                    return
                method, path, body = requests[position % len(requests)]
                position += 1
                t0 = time.perf_counter()
                if rate:
                    t0 = started + (sent * concurrency + index) / rate
                    sent += 1
                    if t0 > time.perf_counter():
                        await asyncio.sleep(t0 - time.perf_counter())
                status, _ = await conn.request(method, path, body)
                result.latencies.append(time.perf_counter() - t0)
                result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            await conn.close()

    await asyncio.gather(*(one_connection(i) for i in range(concurrency)))
    result.seconds = time.perf_counter() - started
    result.requests = len(result.latencies)
    return result


def _run(args: tuple, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    import uvloop

    queue.put(uvloop.run(_closed_loop(*args)))


def run_load(
    port: int,
    requests: Sequence[Request],
    *,
    concurrency: int,
    duration: float | None = None,
    headers: dict[str, str] | None = None,
    rate: float | None = None,
    host: str = "127.0.0.1",
) -> LoadResult:
    """Send `requests` (cycled when `duration` is set) from a separate process; wait for it."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    args = (host, port, list(requests), concurrency, duration, headers or {}, rate)
    proc = ctx.Process(target=_run, args=(args, queue), name="loadgen")
    proc.start()
    while True:  # get before join: a large result would otherwise block the child
        try:
            result = queue.get(timeout=1)
            break
        except Empty:
            if proc.exitcode is not None:
                raise RuntimeError(f"the load generator died ({proc.exitcode})") from None
    proc.join()
    return result
