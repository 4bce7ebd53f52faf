"""The wire-API interface: what the proxy needs from one wire format, stated once.

A wire API parses a request body into a Conversation and renders it back, parses and re-renders a
non-streamed response, names its upstream path and auth, shapes errors, and hands out a per-stream
codec. The codec is the streaming half: it classifies each upstream SSE event (text to inspect,
tool-call parts to hold, boundaries), accumulates the Output, and encodes the events the proxy
itself has to write (released text, replacement tool calls, a clean end, an error) so the client
SDK always sees a stream its own parser accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from httpx_sse import ServerSentEvent

from proxy.errors import GuardProxyError
from proxy.model import Conversation, Output, Phase, ToolCall


class PartKind(StrEnum):
    TEXT = "text"  # a text delta the output inspectors read; may be held back and re-encoded
    TOOL = "tool"  # part of a tool call: held until the turn's calls are complete and checked
    BOUNDARY = "boundary"  # ends a run of text (a text block's stop): held text goes out first
    FINISH = "finish"  # the model's turn ends (finish_reason / message_delta): calls are checked
    DONE = "done"  # the stream's last event ([DONE] / message_stop)
    PING = "ping"  # keep-alive: order-free, never held
    ERROR = "error"  # the upstream's own error event: it ends the stream, relayed as the last event
    PASS = "pass"  # anything else: relayed in order


@dataclass(slots=True)
class Part:
    kind: PartKind
    event: ServerSentEvent
    data: dict[str, Any] | None = None  # the event's JSON, when it is JSON
    channel: int = 0  # which output stream (OpenAI choice index; Anthropic: always 0)
    text: str = ""  # for TEXT: the delta


class StreamCodec(Protocol):
    """One stream's event codec. `parts` is called once per upstream event, in order.

    Every part has one kind and one channel: an upstream event that carries several (text and a
    finish_reason, two choices) is split into parts that each encode as a valid event.
    """

    @property
    def done(self) -> bool:
        """Saw the wire format's final event."""
        ...

    def parts(self, event: ServerSentEvent) -> list[Part]: ...

    def channels(self) -> list[int]:
        """The output channels seen so far (choices), in order."""
        ...

    def output(self, channel: int = 0) -> Output:
        """What the upstream has sent so far on one channel, as the SDK would assemble it."""
        ...

    def must_resend(self, channel: int) -> bool:
        """The channel's calls must go out re-encoded even when unchanged (SDKs would read them apart)."""
        ...

    def encode(self, part: Part) -> ServerSentEvent:
        """Relay an upstream event (re-indexed if the proxy withheld a block before it)."""
        ...

    def text_event(self, part: Part, text: str) -> ServerSentEvent:
        """A text delta like `part` carrying `text` instead (released or redacted text)."""
        ...

    def tool_events(self, calls: tuple[ToolCall, ...], channel: int = 0) -> list[ServerSentEvent]:
        """Fresh, complete events for tool calls the proxy lets through after a transform."""
        ...

    def notice_events(self, text: str, channel: int = 0) -> list[ServerSentEvent]:
        """Text the proxy adds (a notice, or text a guard rewrote), as valid events at the current position."""
        ...

    def finish_event(self, part: Part, output: Output, trace: dict[str, Any] | None = None) -> ServerSentEvent:
        """The FINISH event with its stop reason fitted to `output` (e.g. no calls left); `trace`:
        what the proxy withheld, carried in the event as a `guardproxy` field."""
        ...

    def end_blocked(self, reason: str, notice: str) -> list[ServerSentEvent]:
        """Valid final events that end the stream now, saying why (the upstream is dropped)."""
        ...

    def error_event(self, error: GuardProxyError, request_id: str) -> ServerSentEvent: ...


@dataclass(frozen=True, slots=True)
class RequestParams:
    """The sampling settings a request asked for, neutral of wire format (telemetry names them)."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    choice_count: int | None = None  # only when not 1
    output_type: str | None = None  # "text" | "json"
    api_type: str | None = None  # a vendor's own name for the API (openai.api.type)


@dataclass(frozen=True, slots=True)
class PhasePlan:
    """Which guard phase judges what crosses the proxy in each direction.

    A model API sends the client's conversation to the model (INPUT) and the model's answer back
    (OUTPUT). MCP flips it: a `tools/call` request is what the model decided (OUTPUT), its
    result is untrusted content the model will read (INPUT).
    """

    request: Phase = Phase.INPUT
    response: Phase = Phase.OUTPUT


def bearer_auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@dataclass(frozen=True, slots=True)
class WireAPI:
    """One wire API, as the functions of its adapter module (stated once, not wrapped per API).

    Every wire-format question is answered here; see `proxy.providers` for the contract.
    """

    name: str  # the API, e.g. "openai.chat": Conversation.api, the registry key
    vendor: str  # who serves it, e.g. "openai": gen_ai.provider.name and the upstream base URL
    route: str  # the proxy's own path, e.g. "/v1/chat/completions"
    upstream_path: str  # appended to the vendor's upstream base URL
    parse: Callable[[dict[str, Any]], Conversation]
    render: Callable[[Conversation], dict[str, Any]]  # the very `conv.raw` object when nothing changed
    parse_output: Callable[[dict[str, Any]], Output]
    render_output: Callable[[dict[str, Any], Output], dict[str, Any]]
    stream_codec: Callable[[], StreamCodec]
    error_body: Callable[[GuardProxyError, str | None], dict[str, Any]]
    request_params: Callable[[dict[str, Any]], RequestParams]
    message_count: Callable[[dict[str, Any]], int]
    upstream_auth: Callable[[str], dict[str, str]] = bearer_auth  # the proxy's upstream key -> headers
    stopped_reason: str = "stop"  # the finish reason a client sees when the proxy ends a stream
    operation: str = "chat"  # gen_ai.operation.name
    phases: PhasePlan = PhasePlan()


Provider = WireAPI  # the name the stream modules still use
