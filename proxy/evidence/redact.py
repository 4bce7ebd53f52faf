"""Makes text safe to keep: credentials always scrubbed, PII turned into numbered placeholders.

One `BundleRedactor` per bundle, so a value gets the same placeholder everywhere in it
(`[EMAIL_ADDRESS_1]`, `[SECRET_JWT_1]`). What a reviewer needs stays readable: rule matches
(the injection payload itself, with any address it names) and URL hosts are protected from PII
redaction; credentials are scrubbed even there, because a leaked key in evidence is a second
incident.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

import re2

from proxy.pii.analyzer import PiiAnalyzer, PiiHit, Taken
from proxy.pii.placeholders import EVIDENCE_STYLE, Vault

# (kind, pattern, group holding the secret). Most specific first; spans never overlap. RE2, not
# `re`: backtracking retried each pattern from every place its prefix occurs ("sk-sk-sk-...",
# "eyJ-eyJ-...", unclosed PEM headers, "a.a.a...://") and scanned the run after each, which is
# quadratic; RE2 is linear in the text. (Its \b and \w are ASCII: a key glued to a non-ASCII
# letter is scrubbed too, the safe side.)
CREDENTIALS: tuple[tuple[str, Any, int], ...] = (
    ("SECRET_PRIVATE_KEY", re2.compile(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"), 0),
    ("SECRET_JWT", re2.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), 0),
    ("SECRET_API_KEY", re2.compile(r"\bsk-(?:ant-|proj-|svcacct-|live-)?[A-Za-z0-9_-]{16,}"), 0),
    ("SECRET_AWS_KEY", re2.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"), 0),
    ("SECRET_GOOGLE_KEY", re2.compile(r"\bAIza[0-9A-Za-z_-]{35}"), 0),
    ("SECRET_GITHUB_TOKEN", re2.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"), 0),
    ("SECRET_SLACK_TOKEN", re2.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), 0),
    ("SECRET_STRIPE_KEY", re2.compile(r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}"), 0),
    ("SECRET_AZURE_KEY", re2.compile(r"(?i)\b(?:AccountKey|SharedAccessKey|sig)=([A-Za-z0-9%+/=]{20,})"), 1),
    ("SECRET_BEARER", re2.compile(r"(?i)\b(?:bearer|basic|token)\s+([A-Za-z0-9._~+/=-]{12,})"), 1),
    ("SECRET_PASSWORD", re2.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@]+:([^\s@/]+)@"), 1),
    ("SECRET_AWS_SECRET", re2.compile(
        r"(?i)aws.{0,24}?(?:secret|key)[\w\s\"']{0,12}?[:=]\s*[\"']?([A-Za-z0-9/+=]{40})\b"), 1),
    ("SECRET_VALUE", re2.compile(
        r"(?i)\b(?:api[_-]?key|apikey|secret|token|password|passwd|pwd|access[_-]?key|client[_-]?secret"
        r"|private[_-]?key|auth)[\"']?\s*[:=]\s*[\"']?([^\s\"',;&}]{8,})"), 1),
)
MAX_PROTECTED = 64
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie",
    "x-goog-api-key", "x-auth-token",
})
# An address is found from each '@' outwards, never by a pattern that starts anywhere: the plain
# `[\w.+%-]+@...` search retries from every character of a long run without '@' (40 KB of
# base64url took 19 s). Both sides stop at the neighbouring '@', so the work is linear overall.
_LOCAL_REVERSED = re.compile(r"[\w.+%-]+")
_DOMAIN = re.compile(r"[\w-]+(?:\.[\w-]+)+")
_URL_HOST = re2.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s/?#\"'<>]+")


# Something every credential pattern above needs; most strings have none and skip the 13 scans.
# RE2: `re` tries this case-folded alternation at every character (about 1 ms for 2.6 KB of text
# that holds none of it); RE2's DFA reads the text once (about 10 us).
_MAYBE_SECRET = re2.compile(
    r"(?i)-----BEGIN|eyJ|sk-|AKIA|ASIA|ABIA|ACCA|AIza|gh[pousr]_|github_pat_|xox[abprs]-|_live_|_test_"
    r"|AccountKey|SharedAccessKey|sig=|bearer|basic|token|://|aws|key|secret|passw|pwd|auth"
)


def emails(text: str, lo: int = 0, hi: int | None = None) -> list[tuple[int, int]]:
    """Spans of e-mail addresses in text[lo:hi], left to right, never overlapping."""
    hi = len(text) if hi is None else hi
    found: list[tuple[int, int]] = []
    floor = lo  # a match may not begin inside the previous one
    at = text.find("@", lo, hi)
    while at >= 0:
        local = _LOCAL_REVERSED.match(text[floor:at][::-1])
        domain = _DOMAIN.match(text, at + 1, hi)
        if local is not None and domain is not None:
            found.append((at - local.end(), domain.end()))
            floor = domain.end()
        else:
            floor = max(floor, at + 1)
        at = text.find("@", floor, hi)
    return found


def scrub_credentials(text: str, vault: Vault) -> tuple[str, int]:
    """`text` with every credential-shaped string replaced; how many were found."""
    if not _MAYBE_SECRET.search(text):
        return text, 0
    spans: list[tuple[int, int, str]] = []
    taken = Taken(len(text))
    for kind, pattern, group in CREDENTIALS:
        for m in pattern.finditer(text):
            s, e = m.span(group)
            if s < 0 or not taken.free(s, e):
                continue
            taken.take(s, e)
            spans.append((s, e, kind))
    if not spans:
        return text, 0
    hits = [PiiHit(kind, s, e, 1.0) for s, e, kind in spans]
    return vault.replace(text, hits), len(hits)


class CleanTexts:
    """Texts redaction found nothing in (no credential, no PII, no address): shared by the bundles
    one recorder builds, so a text resent with every request (system prompt, tool documents,
    schemas) is scanned once, not once per bundle. A clean text comes out as it went in whatever
    the bundle protects or has numbered, so the answer holds for every bundle; it depends only on
    the analyzer, which is fixed for the recorder's life (rules and policies play no part). Bounded
    by the characters it holds: when full it starts again empty."""

    def __init__(self, max_chars: int = 4_000_000, max_texts: int = 50_000) -> None:
        self.max_chars = max_chars
        self.max_texts = max_texts
        self._texts: set[str] = set()
        self._chars = 0
        self._lock = threading.Lock()  # bundles are built in the builder and writer threads

    def __contains__(self, text: str) -> bool:
        return text in self._texts

    def __len__(self) -> int:
        return len(self._texts)

    def add(self, text: str) -> None:
        if len(text) > self.max_chars:
            return
        with self._lock:
            if text in self._texts:
                return
            if self._chars + len(text) > self.max_chars or len(self._texts) >= self.max_texts:
                self._texts = set()
                self._chars = 0
            self._texts.add(text)
            self._chars += len(text)


class BundleRedactor:
    """Redacts every string of one bundle with one vault; remembers counts, never values."""

    def __init__(self, analyzer: PiiAnalyzer | None, protected: Iterable[str] = (),
                 clean: CleanTexts | None = None) -> None:
        self.analyzer = analyzer
        self.clean = clean  # texts earlier bundles found nothing in (same analyzer)
        self.vault = Vault(EVIDENCE_STYLE)
        # Rule matches stay readable; tiny ones would protect half the text, so skip them. Every
        # text of the bundle is searched for each, so their number is bounded: past the cap (a
        # request with thousands of findings) the rest are redacted like any text, never kept.
        self.protected = sorted({p for p in protected if len(p.strip()) >= 4}, key=len, reverse=True)
        self.protected = self.protected[:MAX_PROTECTED]
        # A value inside an injection payload (the attacker's drop address) is the attacker's,
        # not a data subject's: it stays readable wherever it appears in the bundle.
        self.payload_values = {
            p[h.start : h.end] for p in self.protected for h in (analyzer.analyze(p) if analyzer else ())
        } | {p[s:e] for p in self.protected for s, e in emails(p)}
        self.credentials = 0
        self.pii = 0
        self._done: dict[str, str] = {}

    def text(self, text: str) -> str:
        if not text:
            return text
        done = self._done.get(text)
        if done is not None:
            return done
        if self.clean is not None and text in self.clean:
            return text
        out, found = scrub_credentials(text, self.vault)
        self.credentials += found
        clean = found == 0
        if self.analyzer is not None and self.analyzer.candidates(out):
            keep = Taken(len(out))
            for ks, ke in self._protected_spans(out):
                keep.take(ks, ke)
            analysed = self.analyzer.analyze(out)
            # Nothing recognised and no address at all: clean whatever this bundle protects.
            clean = clean and not analysed and not emails(out)
            hits = [h for h in (_narrow(out, h, keep) for h in analysed)
                    if h is not None and not _is_placeholder(out, h)]
            if "EMAIL_ADDRESS" in self.analyzer.entities:
                hits += _emails_missed(out, hits, keep)
            hits = [h for h in hits if out[h.start : h.end] not in self.payload_values]
            self.pii += len(hits)
            out = self.vault.replace(out, hits)
        if clean and self.clean is not None:
            self.clean.add(text)
        self._done[text] = out
        return out

    def _protected_spans(self, text: str) -> list[tuple[int, int]]:
        spans = [m.span() for m in _URL_HOST.finditer(text)]
        for p in self.protected:
            start = text.find(p)
            while start >= 0:
                spans.append((start, start + len(p)))
                start = text.find(p, start + len(p))
        return spans

    def value(self, value: Any) -> Any:
        """Any JSON value with every string in it (keys included) redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        return value

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {
            k.lower(): "[REDACTED]" if k.lower() in SECRET_HEADERS else self.text(v)
            for k, v in headers.items()
        }

    def summary(self) -> dict[str, Any]:
        return {
            "credentials_scrubbed": self.credentials,
            "pii_redacted": self.pii,
            "placeholders": dict(sorted(self.vault.kinds().items())),
            "pii_engine": "presidio (offline, regex recognizers)" if self.analyzer else None,
        }


def _narrow(text: str, hit: PiiHit, keep: Taken) -> PiiHit | None:
    """The hit, or None when it touches protected text. An email recognised across a URL
    (`host/x?u=jane@example.com`; the local part may hold `/?=`) shrinks to the address itself."""
    if keep.free(hit.start, hit.end):
        return hit
    if hit.entity == "EMAIL_ADDRESS":
        for s, e in emails(text, hit.start, hit.end):
            if keep.free(s, e):
                return PiiHit(hit.entity, s, e, hit.score)
    return None


def _emails_missed(text: str, hits: list[PiiHit], keep: Taken) -> list[PiiHit]:
    """Addresses Presidio's recognizer does not see, e.g. inside a URL's query string."""
    for h in hits:
        keep.take(h.start, h.end)  # keep is this text's own: the hits are claimed now too
    return [PiiHit("EMAIL_ADDRESS", s, e, 1.0) for s, e in emails(text) if keep.free(s, e)]


def _is_placeholder(text: str, hit: PiiHit) -> bool:
    return text[max(hit.start - 1, 0) : hit.start] == "[" and text[hit.end : hit.end + 1] == "]"
