"""Finds the caller's API key in the request headers, refusing ambiguous ones.

OpenAI SDKs send `Authorization: Bearer <key>`, Anthropic SDKs `x-api-key`, Azure-style clients
`api-key`. Two different keys in one request is ambiguous and refused rather than guessed.
"""

from __future__ import annotations

import ipaddress

from starlette.datastructures import Headers

from proxy.errors import InvalidRequest, Unauthorized

KEY_HEADERS = ("authorization", "x-api-key", "api-key")


def api_key_from(headers: Headers) -> str | None:
    keys: set[str] = set()
    for name in KEY_HEADERS:
        for value in headers.getlist(name):
            keys.add(_key(name, value))
    if len(keys) > 1:
        raise InvalidRequest("more than one API key in the request headers", code="ambiguous_credentials")
    return keys.pop() if keys else None


def _key(name: str, value: str) -> str:
    value = value.strip()
    if name != "authorization":
        return value
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <key>'")
    return token.strip()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def exposure_problem(host: str, has_client_keys: bool, allow_unauthenticated: bool) -> str | None:
    """Why serving on `host` would be an open relay for the upstream key, or None."""
    if has_client_keys or allow_unauthenticated or is_loopback(host):
        return None
    return (f"refusing to listen on {host} with no client keys in the policy: anyone reaching it would "
            "spend the upstream key; add client keys, listen on 127.0.0.1, or set "
            "GUARDPROXY_ALLOW_UNAUTHENTICATED=true")
