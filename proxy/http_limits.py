"""Header limits and timeouts, enforced on the raw connection before any byte reaches the app.

uvicorn runs httptools here (installed, and faster than h11), and uvicorn has no header limits
for it: `h11_max_incomplete_event_size` applies to h11 only, and its keep-alive timer is armed
only after a first response, so a connection that never finishes its headers is never closed.
This protocol is uvicorn's own httptools protocol with a small check in front of the parser:
it counts the bytes and lines of each request head as they arrive, refuses a head that is too
large or has too many lines with a 431 before the parser buffers it, and closes a connection
whose head is not complete within `header_timeout_s` (408), whether it is idle or trickling.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from proxy.errors import InvalidRequest
from proxy.settings import HttpSettings

_END = b"\r\n\r\n"


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with per-request head limits (bind `limits` with `protocol_for`)."""

    limits: ClassVar[HttpSettings] = HttpSettings()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0
        self._head_lines = 0
        self._tail = b""
        self._reading_head = True
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()  # a connection that never sends a byte is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_head and not self._head_within_limits(data):
            return
        super().data_received(data)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # The next request's head starts with the next byte (uvicorn's keep-alive timer covers
        # the idle gap; our timer starts when that head starts arriving).
        self._reading_head, self._head_bytes, self._head_lines, self._tail = True, 0, 0, b""

    def _head_within_limits(self, data: bytes) -> bool:
        if self._head_timer is None:
            self._arm_head_timer()
        window = self._tail + data
        end = window.find(_END)
        head = window[len(self._tail) :] if end < 0 else window[len(self._tail) : end + len(_END)]
        self._head_bytes += len(head)
        self._head_lines += head.count(b"\n")
        self._tail = window[-(len(_END) - 1) :]
        limits = self.limits
        if self._head_bytes > limits.max_header_bytes:
            self._refuse(431, f"request headers exceed the limit of {limits.max_header_bytes} bytes",
                         "header_too_large")
            return False
        # The request line and the blank line that ends the head are not headers.
        if self._head_lines - (2 if end >= 0 else 1) > limits.max_header_count:
            self._refuse(431, f"request has more than {limits.max_header_count} header lines",
                         "too_many_headers")
            return False
        if end >= 0:
            self._reading_head = False
            self._cancel_head_timer()
        return True

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._reading_head and not self.transport.is_closing():
            self._refuse(408, f"request headers not received within {self.limits.header_timeout_s:g}s",
                         "header_timeout")

    def _refuse(self, status: int, message: str, code: str) -> None:
        self._cancel_head_timer()
        self._reading_head = False
        body = json.dumps(InvalidRequest(message, status_code=status, code=code).body()).encode()
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        head = (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n" % (status, reason, len(body)))
        self.transport.write(head + body)
        self.transport.close()


def protocol_for(limits: HttpSettings) -> type[LimitedHttpToolsProtocol]:
    """The protocol class uvicorn instantiates per connection, bound to these limits."""
    bound: dict[str, Any] = {"limits": limits}
    return type("LimitedHttp", (LimitedHttpToolsProtocol,), bound)
