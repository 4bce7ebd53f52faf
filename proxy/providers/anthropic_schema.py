"""Shape check of an Anthropic Messages request, with errors that name the field.

Only what guardproxy relies on is checked (roles, the content blocks it reads, tools, the stream
flag, max_tokens); every other field passes through for the upstream to judge. Types are strict:
"stream": "yes" is an error, not a coercion. Unknown block types pass (new ones appear often);
the blocks whose text guardproxy labels must have the shape it reads.
"""

from __future__ import annotations

from typing import Any, NoReturn

from proxy.errors import InvalidRequest

ROLES = ("user", "assistant")
# Block type -> (field, expected type name) pairs that must be present.
_REQUIRED: dict[str, tuple[tuple[str, type, str], ...]] = {
    "text": (("text", str, "a string"),),
    "tool_use": (("id", str, "a string"), ("name", str, "a string"), ("input", dict, "an object")),
    "tool_result": (("tool_use_id", str, "a string"),),
    "mcp_tool_result": (("tool_use_id", str, "a string"),),
    "document": (("source", dict, "an object"),),
}


def validate_request(body: Any) -> None:
    """Raise InvalidRequest naming the first bad field; return None when the shape is right."""
    if not isinstance(body, dict):
        raise InvalidRequest(f"request body must be a JSON object, got {type(body).__name__}", code="invalid_type")
    model = _field(body, "model", str, "a string", required=True)
    if not model:
        _fail("model", "must not be empty", "invalid_value")
    max_tokens = _field(body, "max_tokens", int, "an integer", required=True)
    if max_tokens < 1:
        _fail("max_tokens", f"must be >= 1 (got {max_tokens})", "invalid_value")
    _field(body, "stream", bool, "a boolean")
    _system(body.get("system"))
    messages = _field(body, "messages", list, "an array", required=True)
    if not messages:
        _fail("messages", "must hold at least one message", "invalid_value")
    for i, message in enumerate(messages):
        _message(message, f"messages.{i}")
    tools = _field(body, "tools", list, "an array")
    for i, tool in enumerate(tools or ()):
        _tool(tool, f"tools.{i}")
    _field(body, "tool_choice", dict, "an object")


def _field(obj: dict[str, Any], name: str, kind: type, kind_name: str, *, required: bool = False,
           at: str = "") -> Any:
    param = f"{at}.{name}" if at else name
    if name not in obj or obj[name] is None:
        if required:
            _fail(param, "field required", "missing_field")
        return None
    value = obj[name]
    # bool is an int subclass: `"max_tokens": true` is a mistake, not 1.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        _fail(param, f"must be {kind_name} (got {_show(value)})", "invalid_type")
    return value


def _system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        _fail("system", f"must be a string or an array of text blocks (got {_show(system)})", "invalid_type")
    for j, block in enumerate(system):
        _block(block, f"system.{j}")


def _message(message: Any, at: str) -> None:
    if not isinstance(message, dict):
        _fail(at, f"must be an object (got {_show(message)})", "invalid_type")
    role = _field(message, "role", str, "a string", required=True, at=at)
    if role not in ROLES:
        _fail(f"{at}.role", f"must be one of {', '.join(ROLES)} (got {role!r})", "invalid_value")
    if "content" not in message:
        _fail(f"{at}.content", "field required", "missing_field")
    content = message["content"]
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        _fail(f"{at}.content", f"must be a string or an array of content blocks (got {_show(content)})",
              "invalid_type")
    for j, block in enumerate(content):
        _block(block, f"{at}.content.{j}")


def _block(block: Any, at: str) -> None:
    if not isinstance(block, dict):
        _fail(at, f"must be an object (got {_show(block)})", "invalid_type")
    kind = _field(block, "type", str, "a string", required=True, at=at)
    for name, expected, expected_name in _REQUIRED.get(kind, ()):
        _field(block, name, expected, expected_name, required=True, at=at)
    if kind in ("tool_result", "mcp_tool_result", "search_result"):
        content = block.get("content")
        if content is not None and not isinstance(content, str | list):
            _fail(f"{at}.content", f"must be a string or an array of content blocks (got {_show(content)})",
                  "invalid_type")
        for k, inner in enumerate(content if isinstance(content, list) else ()):
            _block(inner, f"{at}.content.{k}")
    if kind == "document":
        _document_source(block["source"], f"{at}.source")


def _document_source(source: dict[str, Any], at: str) -> None:
    kind = _field(source, "type", str, "a string", required=True, at=at)
    if kind == "text":
        _field(source, "data", str, "a string", required=True, at=at)
    elif kind == "content":
        content = source.get("content")
        if isinstance(content, str):
            return
        if not isinstance(content, list):
            _fail(f"{at}.content", "must be a string or an array of content blocks", "invalid_type")
        for k, inner in enumerate(content):
            _block(inner, f"{at}.content.{k}")


def _tool(tool: Any, at: str) -> None:
    if not isinstance(tool, dict):
        _fail(at, f"must be an object (got {_show(tool)})", "invalid_type")
    name = _field(tool, "name", str, "a string", required=True, at=at)
    if not 1 <= len(name) <= 128:
        _fail(f"{at}.name", "must be 1 to 128 characters", "invalid_value")
    _field(tool, "description", str, "a string", at=at)
    if tool.get("type") in (None, "custom"):
        _field(tool, "input_schema", dict, "an object", required=True, at=at)


def _fail(param: str, message: str, code: str) -> NoReturn:
    raise InvalidRequest(f"{param}: {message}", param=param, code=code)


def _show(value: Any) -> str:
    return type(value).__name__ if isinstance(value, dict | list) else repr(value)[:80]
