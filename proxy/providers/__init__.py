"""The wire-API registry: one registered `WireAPI` per API the proxy speaks, answering every
wire-format question, so nothing outside `proxy/providers/` branches on a provider string.

    APIS["openai.chat"]      -> the Chat Completions adapter     (route /v1/chat/completions)
    ROUTES["/v1/messages"]   -> the Anthropic Messages adapter

Adding an API is one adapter module plus one line in `_REGISTERED` below. The contract the module
fills in (`proxy.providers.base.WireAPI`):

- `name` ("vendor.api", e.g. "openai.responses", "mcp") is `Conversation.api` and the key in
  `APIS`; `vendor` ("openai", "anthropic") is `gen_ai.provider.name` and picks the upstream base
  URL (`Upstream.base_for`). Keep them apart: one vendor serves several APIs.
- `route` is the proxy's own POST path (the app mounts one handler per registered API and picks
  the error shape by route); `upstream_path` is appended to the vendor's base URL.
- `parse(body) -> Conversation`: validate and label *every* content-bearing field the model can
  read as trust-labelled `Segment`s with a `Location` back into the body, or raise
  `InvalidRequest(param=<the field>)` for a shape it does not know (closed contract). Unknown
  scalar parameters may pass.
- `render(conv) -> body`: the very `conv.raw` object when nothing changed (so the client's bytes go
  upstream), else a copy with rewritten texts, tools and added segments (`jsonpath.rewritten`).
- `parse_output(response) -> Output` / `render_output(response, output) -> response`: a plain
  (non-streamed) answer, every choice / output item included.
- `stream_codec() -> StreamCodec`: one per stream; classifies upstream events and encodes the ones
  the proxy writes (see `StreamCodec`).
- `error_body(error, request_id)`: any `GuardProxyError` in the API's own error shape.
- `upstream_auth(key) -> headers`: how the proxy's own upstream key is sent.
- `request_params(body) -> RequestParams`: sampling settings for telemetry; `operation` is
  `gen_ai.operation.name`; `message_count(body)` counts turns for the input limits.
- `stopped_reason`: the finish / stop reason a client sees when the proxy ends a stream early.
- `phases` (`PhasePlan`): which guard phase judges the request and which the response. Model APIs
  are INPUT then OUTPUT; MCP flips it (a `tools/call` request is OUTPUT, its result INPUT).
"""

from __future__ import annotations

from proxy.mcp.wire import MCP
from proxy.providers.anthropic_messages import ANTHROPIC
from proxy.providers.base import WireAPI
from proxy.providers.openai_chat import OPENAI
from proxy.providers.openai_responses import RESPONSES

_REGISTERED: tuple[WireAPI, ...] = (OPENAI, ANTHROPIC, RESPONSES, MCP)

APIS: dict[str, WireAPI] = {api.name: api for api in _REGISTERED}
ROUTES: dict[str, WireAPI] = {api.route: api for api in _REGISTERED}
DEFAULT = OPENAI  # errors on routes no API owns (404s, /v1/models) take its shape
# Evidence written before APIs had names said only the vendor.
_LEGACY = {"openai": "openai.chat", "anthropic": "anthropic.messages"}


def api_named(name: str | None) -> WireAPI:
    """The registered API called `name` (an older bundle's vendor name works too)."""
    if name is None:
        return DEFAULT
    api = APIS.get(name) or APIS.get(_LEGACY.get(name, ""))
    if api is None:
        raise KeyError(f"no wire API named {name!r}; registered: {', '.join(APIS)}")
    return api


def api_for_route(path: str) -> WireAPI:
    """The API that owns a route, by longest prefix; the default shape for anything else."""
    api = ROUTES.get(path)
    if api is not None:
        return api
    for route, candidate in ROUTES.items():
        if path.startswith(route):
            return candidate
    return DEFAULT
