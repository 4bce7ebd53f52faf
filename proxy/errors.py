"""guardproxy's own small error tree, and the one table from error to HTTP status.

Third-party exceptions (httpx, pydantic, YAML) are translated into these at the module that
talks to the library, so the app has exactly one error handler and one wire shape.
"""

from __future__ import annotations

from typing import Any


class GuardProxyError(Exception):
    """Base: carries what the client sees, in OpenAI's error shape."""

    status_code = 500
    error_type = "server_error"
    code: str | None = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        err: dict[str, Any] = {
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
        }
        if request_id:
            err["request_id"] = request_id
        err.update(self.extra)
        return {"error": err}


class ConfigError(GuardProxyError):
    """Settings, rule or policy files that do not load. Raised at start-up or reload."""

    code = "config_error"


class InvalidRequest(GuardProxyError):
    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_request"


class InvalidJSON(InvalidRequest):
    code = "invalid_json"


class InvalidEncoding(InvalidRequest):
    code = "invalid_encoding"


class UnsupportedMediaType(InvalidRequest):
    status_code = 415
    code = "unsupported_media_type"


class PayloadTooLarge(InvalidRequest):
    status_code = 413
    code = "payload_too_large"


class InputLimitExceeded(PayloadTooLarge):
    """Over an upstream's admission cap on input size (characters or estimated tokens)."""

    code = "input_limit_exceeded"


class Overloaded(GuardProxyError):
    """Shed by admission control (queue full or wait too long): 429 or 503, with Retry-After."""

    status_code = 429
    error_type = "overloaded_error"
    code = "overloaded"


class RequestTimeout(InvalidRequest):
    status_code = 408
    code = "client_body_timeout"


class Unauthorized(GuardProxyError):
    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class NotFound(GuardProxyError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "not_found"


class GuardrailViolation(GuardProxyError):
    status_code = 400
    error_type = "guardrail_violation"
    code = "blocked"


class GuardrailUnavailable(GuardProxyError):
    """A fail-closed guard errored or timed out: the request was not scanned, so it is refused."""

    status_code = 503
    error_type = "guardrail_unavailable"
    code = "guardrail_unavailable"


class UpstreamError(GuardProxyError):
    status_code = 502
    error_type = "upstream_error"
    code = "upstream_unreachable"


class UpstreamTimeout(UpstreamError):
    status_code = 504
    code = "upstream_timeout"


class UpstreamProtocolError(UpstreamError):
    code = "upstream_bad_response"


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
