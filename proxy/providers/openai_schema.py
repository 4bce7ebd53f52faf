"""Shape check of a chat completions request, with errors that name the field.

Only what guardproxy relies on is checked (roles, content shapes, tools, stream flag); every other
field passes through untouched for the upstream to judge. Types are strict: "stream": "yes" is an
error, not a coercion.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from proxy.errors import InvalidRequest

_Open = ConfigDict(extra="allow", strict=True)


class _Part(BaseModel):
    model_config = _Open
    type: StrictStr  # the adapter labels known types and records unknown ones as unread shapes
    text: StrictStr | None = None


class _Function(BaseModel):
    model_config = _Open
    name: StrictStr
    arguments: StrictStr | None = None


class _CallIn(BaseModel):
    model_config = _Open
    id: StrictStr
    type: Literal["function"] = "function"
    function: _Function


class _Message(BaseModel):
    model_config = _Open
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: StrictStr | list[_Part] | None = None
    name: StrictStr | None = None
    tool_call_id: StrictStr | None = None
    tool_calls: list[_CallIn] | None = None


class _FunctionDef(BaseModel):
    model_config = _Open
    name: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None


class _Tool(BaseModel):
    model_config = _Open
    type: Literal["function"]
    function: _FunctionDef


class _Request(BaseModel):
    model_config = _Open
    model: Annotated[StrictStr, Field(min_length=1)]
    messages: Annotated[list[_Message], Field(min_length=1)]
    stream: StrictBool | None = None
    tools: list[_Tool] | None = None
    functions: list[_FunctionDef] | None = None  # legacy: scoped like tools
    # Sampling parameters with their documented ranges: a bad one is refused here, not billed upstream.
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    max_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    n: Annotated[StrictInt, Field(ge=1, le=128)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    seed: StrictInt | None = None
    stop: StrictStr | Annotated[list[StrictStr], Field(max_length=4)] | None = None
    logprobs: StrictBool | None = None
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    parallel_tool_calls: StrictBool | None = None
    user: StrictStr | None = None


def validate_request(body: Any) -> None:
    """Raise InvalidRequest naming the first bad field; return None when the shape is right."""
    if not isinstance(body, dict):
        raise InvalidRequest(
            f"request body must be a JSON object, got {type(body).__name__}", code="invalid_type"
        )
    try:
        _Request.model_validate(body)
    except ValidationError as exc:
        raise _translate(exc) from None
    _check_roles(body["messages"])


def _check_roles(messages: list[dict[str, Any]]) -> None:
    for i, m in enumerate(messages):
        if m["role"] == "tool" and not m.get("tool_call_id"):
            raise InvalidRequest(
                f"messages.{i}.tool_call_id: a tool message needs tool_call_id",
                param=f"messages.{i}.tool_call_id",
                code="missing_field",
            )


def _translate(exc: ValidationError) -> InvalidRequest:
    err = _most_specific(exc.errors())
    loc = [p for p in err["loc"] if not _is_union_tag(p)]
    param = ".".join(str(p) for p in loc) or None
    value = err.get("input")
    shown = repr(value)[:80] if not isinstance(value, dict | list) else type(value).__name__
    code = "missing_field" if err["type"] == "missing" else "invalid_type"
    if err["type"] == "literal_error":
        code = "invalid_value"
    where = param or "body"
    return InvalidRequest(f"{where}: {err['msg']} (got {shown})", param=param, code=code)


def _most_specific(errors: list[Any]) -> Any:
    """Of a union's alternatives, report the one that got deepest into the value."""
    return max(errors, key=lambda e: len([p for p in e["loc"] if not _is_union_tag(p)]))


def _is_union_tag(part: Any) -> bool:
    # pydantic names union branches in `loc` ("str", "list[_Part]"); they are not field names.
    return isinstance(part, str) and ("[" in part or part in {"str", "function-after"})
