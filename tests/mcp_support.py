"""Helpers for the MCP gateway tests: keys, a policy, the official client through the proxy."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from proxy import serving

KEYS = {"agent": "gp-agent-key-0001", "reader": "gp-reader-key-0002"}


def write_policy(path: Path, extra_reader: str = "") -> Path:
    sha = {n: hashlib.sha256(k.encode()).hexdigest() for n, k in KEYS.items()}
    path.write_text(f"""kind: policy
version: 1
tools:
  files.read_file: {{scope: read}}
  files.write_file: {{scope: side_effect, sensitive_args: [path]}}
  files.send_report: {{scope: side_effect, sensitive_args: [to]}}
clients:
  - name: agent
    key_sha256: {sha['agent']}
    tools: "*"
  - name: reader
    key_sha256: {sha['reader']}
    tools: [files.read_file]
    mcp: {{resources: ["file://notes.txt"], prompts: []{extra_reader}}}
""")
    return path


def mcp_url(handle: serving.ProxyHandle, server: str = "files") -> str:
    return handle.url.removesuffix("/v1") + f"/mcp/{server}"


@asynccontextmanager
async def session(
    handle: serving.ProxyHandle, key: str = KEYS["agent"], server: str = "files"
) -> AsyncIterator[ClientSession]:
    """The official client, through the proxy, authenticated with a guardproxy key."""
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http, \
            streamable_http_client(mcp_url(handle, server), http_client=http) as (read, write), \
            ClientSession(read, write) as client:
        await client.initialize()
        yield client


class ScriptedMcp:
    """A raw loopback HTTP server that answers MCP POSTs as told: garbage, stalls, resets, floods.

    Raw sockets, not a framework: the faults (a reset mid-stream, a half-sent event) are bytes on
    the wire that no well-behaved server library would produce. It records each request's headers.
    """

    def __init__(self) -> None:
        import asyncio
        import threading

        self.mode = "ok"
        self.requests: list[dict[str, str]] = []
        self.port = serving.free_port()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    async def _start(self) -> None:
        import asyncio

        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader, writer) -> None:  # type: ignore[no-untyped-def]
        import asyncio
        import json

        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append(headers)
        msg = json.loads(body) if body else {}
        mode = self.mode
        if mode == "stall":
            await asyncio.sleep(30)
        if mode == "reset":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                         b"10\r\nevent: message\nda")
            await writer.drain()
            writer.transport.abort()
            return
        if mode in ("garbage_sse", "stall_sse", "flood_sse"):
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                         b"connection: close\r\n\r\n")
            writer.write(b"id: 1\ndata: \n\n")
            if mode == "garbage_sse":
                writer.write(b"event: message\nid: 2\ndata: {not json\n\n")
            elif mode == "flood_sse":
                writer.write(b"data: " + b"x" * 200_000)
            await writer.drain()
            if mode == "stall_sse":
                await asyncio.sleep(30)
            writer.close()
            return
        ctype = b"text/html" if mode == "html" else b"application/json"
        if mode in ("garbage", "html"):
            payload = b"<html>oops</html>"
        elif mode == "big":
            payload = json.dumps({"jsonrpc": "2.0", "id": msg.get("id"),
                                  "result": {"content": [{"type": "text", "text": "y" * 300_000}]}}).encode()
        else:
            payload = json.dumps({"jsonrpc": "2.0", "id": msg.get("id"),
                                  "result": {"content": [{"type": "text", "text": "fine"}]}}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: " + ctype + b"\r\nconnection: close\r\n"
                     + f"content-length: {len(payload)}\r\n\r\n".encode() + payload)
        await writer.drain()
        writer.close()
