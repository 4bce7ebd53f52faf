"""Who may use the review console: token login, server-side sessions, CSRF tokens, security headers.

The reviewer token is compared in constant time and only ever travels in a POST body; a login
mints a random session id (the cookie: Secure, HttpOnly, SameSite=Strict) that maps, in this
process only, to its expiry and its CSRF token (synchronizer pattern: every state-changing form
carries it, and a POST without the matching value is refused). Restarting the console logs
everyone out, which is the point of keeping nothing on disk.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass

COOKIE = "gp_review_session"
SESSION_SECONDS = 8 * 3600
TOKEN_ENV = "GUARDPROXY_REVIEW_TOKEN"
MIN_TOKEN_CHARS = 16

# `default-src 'self'` with nothing inline: bundle text can never become script or style, even if
# an escaping bug slipped through. Forms post only to the console; nothing may frame it.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",  # no-referrer would make Chromium send `Origin: null` on our own forms
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "cache-control": "no-store",
}


@dataclass(frozen=True, slots=True)
class Session:
    csrf: str
    expires: float
    reviewer: str


class Sessions:
    """The console's logged-in reviewers, in memory."""

    def __init__(self, token: str, lifetime: float = SESSION_SECONDS) -> None:
        self._token = token.encode()
        self._lifetime = lifetime
        self._lock = threading.Lock()
        self._by_id: dict[str, Session] = {}

    def login(self, offered: str, reviewer: str) -> str | None:
        """A new session id when `offered` is the reviewer token, else None."""
        if not hmac.compare_digest(offered.encode(), self._token):
            return None
        sid = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._by_id = {k: v for k, v in self._by_id.items() if v.expires > now}
            self._by_id[sid] = Session(secrets.token_urlsafe(32), now + self._lifetime, reviewer)
        return sid

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            session = self._by_id.get(sid)
        if session is None or session.expires <= time.monotonic():
            return None
        return session

    def logout(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)


def csrf_ok(session: Session, offered: str | None) -> bool:
    return bool(offered) and hmac.compare_digest(session.csrf.encode(), str(offered).encode())


def token_problem(token: str | None) -> str | None:
    """Why a reviewer token cannot be used (None when it can)."""
    if not token:
        return f"set {TOKEN_ENV} to a reviewer token (at least {MIN_TOKEN_CHARS} characters) to start the console"
    if len(token) < MIN_TOKEN_CHARS:
        return f"{TOKEN_ENV} is too short: use at least {MIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 24`)"
    return None
