"""The httpx side of the gateway: one client per tool server, its credentials added last.

Only MCP transport headers pass from the client (`mcp-*`, `last-event-id`, `accept`,
`content-type`); the client's own credentials never reach a tool server, and the server's
credentials come only from settings. Transport failures become JSON-RPC-shaped McpErrors; SSE is
decoded with httpx-sse's decoder behind a per-event byte budget (its line reader has none).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import httpx
from httpx_sse import ServerSentEvent
from httpx_sse._decoders import SSEDecoder, SSELineDecoder

from proxy.mcp.config import McpServer, McpSettings
from proxy.mcp.jsonrpc import UPSTREAM_FAILED, McpError

FORWARDED = ("accept", "content-type", "last-event-id", "mcp-session-id", "mcp-protocol-version")


def forward_headers(client: Mapping[str, str], server: McpServer) -> dict[str, str]:
    out = {k: v for k, v in client.items() if k.lower() in FORWARDED or k.lower().startswith("mcp-")}
    out.update({k: v.get_secret_value() for k, v in server.headers.items()})
    return out


class McpUpstream:
    def __init__(self, server: McpServer, settings: McpSettings, transport: httpx.AsyncBaseTransport | None = None):
        self.server = server
        self.max_bytes = settings.max_result_bytes
        timeout = httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
        self.client = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def open(self, method: str, headers: dict[str, str], content: bytes | None = None) -> httpx.Response:
        request = self.client.build_request(method, self.server.url, headers=headers, content=content)
        try:
            return await self.client.send(request, stream=True)
        except httpx.TimeoutException:
            raise self.failed("did not answer in time", 504) from None
        except httpx.HTTPError as exc:
            raise self.failed(f"could not be reached ({type(exc).__name__})", 502) from None

    def failed(self, what: str, status: int = 502) -> McpError:
        return McpError(UPSTREAM_FAILED, f"MCP server {self.server.name!r} {what}", status=status)

    async def read(self, response: httpx.Response) -> bytes:
        """A whole (non-stream) body, bounded."""
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise self.failed(f"sent an answer over the {self.max_bytes}-byte limit")
                chunks.append(chunk)
        except httpx.TimeoutException:
            raise self.failed("stalled while sending its answer", 504) from None
        except httpx.HTTPError as exc:
            raise self.failed(f"broke off its answer ({type(exc).__name__})") from None
        finally:
            await response.aclose()
        return b"".join(chunks)

    async def events(self, response: httpx.Response) -> AsyncIterator[ServerSentEvent]:
        """SSE events, each at most max_bytes; a stall, reset or oversize event raises McpError."""
        lines, decoder = SSELineDecoder(), SSEDecoder()
        size = 0
        try:
            async for text in response.aiter_text():
                size += len(text)
                if size > self.max_bytes:
                    raise self.failed(f"sent an event over the {self.max_bytes}-byte limit")
                for line in lines.decode(text):
                    event = decoder.decode(line)
                    if event is not None:
                        size = 0
                        yield event
        except httpx.TimeoutException:
            raise self.failed("stalled in the middle of its event stream", 504) from None
        except httpx.HTTPError as exc:
            raise self.failed(f"broke off its event stream ({type(exc).__name__})") from None
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()
