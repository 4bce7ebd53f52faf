"""Anthropic's error shape, for the Messages API's error bodies and stream `error` events."""

from __future__ import annotations

from typing import Any

from proxy.errors import GuardProxyError

# Anthropic's error shape: {"type": "error", "error": {"type", "message"}, "request_id"}. Its
# `type` is what Anthropic SDKs branch on; guardproxy's own types (guardrail_violation ...) are kept
# because they say more than the HTTP class, and the SDK picks its exception by status anyway.
_ANTHROPIC_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_OWN_TYPES = frozenset({"guardrail_violation", "guardrail_unavailable", "overloaded_error"})


def anthropic_error_body(error: GuardProxyError, request_id: str | None = None) -> dict[str, Any]:
    """The same error in Anthropic's shape; `code`, `param` and extras ride along in `error`."""
    if error.error_type in _OWN_TYPES:
        kind = error.error_type
    else:
        fallback = "invalid_request_error" if error.status_code < 500 else "api_error"
        kind = _ANTHROPIC_TYPE_BY_STATUS.get(error.status_code, fallback)
    err: dict[str, Any] = {"type": kind, "message": error.message, "code": error.code}
    if error.param is not None:
        err["param"] = error.param
    err.update(error.extra)
    body: dict[str, Any] = {"type": "error", "error": err}
    if request_id:
        body["request_id"] = request_id
    return body
