"""The engine node's metrics on a port of their own (``EXAMWIRE_METRICS_PORT``): a small HTTP/1.1 listener on the node's loop.

It answers ``GET /metrics`` (and ``HEAD``) with the text exposition and
anything else with 404, one request per connection. It runs on the node's
event loop, not in a thread: a node whose loop is stuck does not answer its
scrapes either, so Prometheus sees it down (``up == 0``) rather than a thread
reporting for a node that no longer serves anyone. A request head is bounded
like the node's own (``EXAMWIRE_MAX_HEADER_BYTES``, ``EXAMWIRE_HEADER_TIMEOUT_S``)
and so is a reader that does not read (``EXAMWIRE_SEND_TIMEOUT_S``).
"""

from __future__ import annotations

import asyncio
from typing import Callable

NOT_FOUND = b"not found: the metrics are at /metrics\n"


async def serve_metrics(host: str, port: int, render: Callable[[], tuple[bytes, str]], *, max_header_bytes: int,
                        header_timeout_s: float, send_timeout_s: float) -> asyncio.Server:  # fmt: skip
    """Listen on ``host:port``; raises ``OSError`` when the address cannot be bound."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(header_timeout_s):
                head = await reader.readuntil(b"\r\n\r\n")
            parts = head.split(b"\r\n", 1)[0].split()
            method, target = (parts[0], parts[1]) if len(parts) >= 2 else (b"", b"")
            if method in (b"GET", b"HEAD") and target.split(b"?", 1)[0] == b"/metrics":
                body, ctype = render()
                status = b"200 OK"
            else:
                body, ctype, status = NOT_FOUND, "text/plain; charset=utf-8", b"404 Not Found"
            writer.write(b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                         % (status, ctype.encode(), len(body)))  # fmt: skip
            if method != b"HEAD":
                writer.write(body)
            async with asyncio.timeout(send_timeout_s):
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, TimeoutError, ConnectionError):
            pass  # a client that left, sent too much or too slowly: no answer
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port, limit=max_header_bytes, reuse_address=True)
