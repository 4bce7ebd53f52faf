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
