"""A scripted upstream for stream-guard tests: says exactly the given text, in chunks of any size.

Speaks both wire formats with the simulator's own renderers, so the bytes are the simulator's;
what differs is control: `text` (or the system prompt echoed back, canary and all), the chunk
size down to one character per event, and scripted tool calls.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from proxy.simulator import anthropic_api, replies


@dataclass
class Script:
    text: str = "hello"
    echo_system: bool = False  # answer with the system prompt (prefix + system text)
    chunk: int = 1  # characters per streamed text event
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    token_ms: float = 0.0
    error_after: int | None = None  # send the wire format's own error event after this many events
    last_body: dict[str, Any] | None = None
    plain: dict[str, Any] | None = None  # a non-streamed answer sent exactly as given (shapes the simulator lacks)


def _system_text(body: dict[str, Any]) -> str:
    system = body.get("system")
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n".join(b.get("text", "") for b in system)
    return "\n".join(m["content"] for m in body.get("messages", []) if m.get("role") == "system")


def _reply(script: Script, body: dict[str, Any], prefix: str) -> replies.Reply:
    text = ("Sure. My instructions: " + _system_text(body)) if script.echo_system else script.text
    calls = tuple(replies.ToolCallOut(f"call_{i}", name, json.dumps(args)) for i, (name, args) in enumerate(
        script.calls))
    tokens = tuple(text[i : i + script.chunk] for i in range(0, len(text), script.chunk))
    return replies.Reply(prefix + "1", text, tokens, calls, 10, max(1, len(tokens)))


class ScriptedUpstream:
    def __init__(self) -> None:
        self.script = Script()
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self._runner: web.AppRunner | None = None

        async def start() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._openai)
            app.router.add_post("/v1/messages", self._anthropic)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = self._runner.addresses[0][1]

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(start())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        started.wait(10)
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _send(self, request: web.Request, events: list[bytes], error: bytes = b"") -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if self.script.error_after is not None:
            events = [*events[: self.script.error_after], error]
        for event in events:
            await response.write(event)
            if self.script.token_ms:
                await asyncio.sleep(self.script.token_ms / 1000)
        await response.write_eof()
        return response

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.script.last_body = body
        reply = _reply(self.script, body, "chatcmpl-")
        if self.script.plain is not None and not body.get("stream"):
            return web.json_response(self.script.plain)
        if not body.get("stream"):
            return web.json_response(replies.chat_completion(reply, body["model"]))
        chunks = replies.chat_chunks(reply, body["model"])
        if reply.tool_calls and reply.text:  # text first, then the calls, as models do
            text_chunks = replies.chat_chunks(replies.Reply(reply.id, reply.text, reply.tokens, (), 1, 1),
                                              body["model"])[:-1]
            chunks = text_chunks + chunks
        events = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks]
        error = {"error": {"message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded"}}
        return await self._send(request, [*events, b"data: [DONE]\n\n"],
                                b"data: " + json.dumps(error).encode() + b"\n\n")

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.script.last_body = body
        reply = _reply(self.script, body, "msg_")
        if self.script.plain is not None and not body.get("stream"):
            return web.json_response(self.script.plain)
        if not body.get("stream"):
            message = anthropic_api.message(reply, body["model"])
            if reply.text and reply.tool_calls:
                message["content"].insert(0, {"type": "text", "text": reply.text})
            return web.json_response(message)
        events = anthropic_api.stream_events(reply, body["model"])
        if reply.text and reply.tool_calls:  # a text block first, then the tool_use blocks after it
            text = anthropic_api.stream_events(replies.Reply(reply.id, reply.text, reply.tokens, (), 1, 1), "m")
            tool_blocks = [dict(e, index=e["index"] + 1) if "index" in e else e for e in events[1:-2]]
            events = [events[0], *text[1:-2], *tool_blocks, *events[-2:]]
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        return await self._send(request, [anthropic_api.sse_event(e) for e in events], anthropic_api.sse_event(error))
