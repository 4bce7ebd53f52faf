"""The review console over loopback through a real HTTP client: login, sessions, CSRF, headers,
filters and paging through the index, labels that feed the corpus, downloads, escaping."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from console.conftest import TOKEN, XSS_PAYLOAD, Seeded

from proxy.console.auth import COOKIE, CSP
from proxy.console.server import ConsoleHandle
from proxy.evidence.cli import corpus_lines
from proxy.evidence.export import check_export
from proxy.evidence.store import Store


@contextmanager
def logged_in(console: ConsoleHandle, reviewer: str = "rita") -> Iterator[httpx.Client]:
    with httpx.Client(base_url=console.url, follow_redirects=False) as client:
        r = client.post("/login", data={"token": TOKEN, "reviewer": reviewer})
        assert r.status_code == 303 and r.headers["location"] == "/"
        # The cookie is Secure: browsers send it to 127.0.0.1 (a secure context), httpx's jar only
        # over https, so this client sends it by hand.
        client.headers["cookie"] = f"{COOKIE}={r.cookies[COOKIE]}"
        yield client


def csrf_of(client: httpx.Client, path: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert match
    return match.group(1)


def test_pages_need_a_session_and_the_token_is_checked(console: ConsoleHandle) -> None:
    with httpx.Client(base_url=console.url) as anon:
        r = anon.get("/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert anon.get("/sources", follow_redirects=False).status_code == 303
        r = anon.post("/login", data={"token": "wrong-token-wrong-token"})
        assert r.status_code == 401 and "not the reviewer token" in r.text and COOKIE not in r.headers.get(
            "set-cookie", "")
        r = anon.post("/login", data={"token": TOKEN}, follow_redirects=False)
        assert r.status_code == 303
        cookie = r.headers["set-cookie"].lower()
        assert all(x in cookie for x in ("httponly", "secure", "samesite=strict", "path=/"))
        assert TOKEN not in r.headers["set-cookie"]


def test_every_response_carries_the_security_headers(console: ConsoleHandle, seeded: tuple[Store, Seeded]) -> None:
    with logged_in(console) as c:
        for path in ("/login", "/", f"/bundles/{seeded[1].xss_id}", "/static/console.css", "/nope",
                     "/bundles/NOTANID"):
            r = c.get(path)
            assert r.headers["content-security-policy"] == CSP, path
            assert "default-src 'self'" in CSP and "frame-ancestors 'none'" in CSP and "unsafe-inline" not in CSP
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["referrer-policy"] == "same-origin"


def test_bundle_strings_are_escaped_never_markup(console: ConsoleHandle, seeded: tuple[Store, Seeded]) -> None:
    with logged_in(console) as c:
        html = c.get(f"/bundles/{seeded[1].xss_id}").text
        body = html.split("<main>", 1)[1]
        assert "<script" not in body and "<img" not in body and "<svg" not in body and "<style" not in body
        assert 'onerror="' not in body
        assert 'href="javascript:' not in body
        assert "&lt;script&gt;window.__xss" in body  # shown as text, exactly
        assert '<mark class="finding sev-high"' in body  # the finding is highlighted at its span
        listing = c.get("/").text
        assert "&lt;b onmouseover=" in listing and "<b onmouseover" not in listing
        assert "<script" not in html.split("</head>")[1]  # the console ships no script at all


def test_filters_use_the_index_and_pages_follow_the_cursor(console: ConsoleHandle,
                                                          seeded: tuple[Store, Seeded]) -> None:
    s = seeded[1]
    with logged_in(console) as c:
        everything = c.get("/").text
        assert all(i in everything for i in [s.injection_id, s.xss_id, *s.clean_ids])
        blocked = c.get("/", params={"action": "block"}).text
        assert s.xss_id in blocked and s.injection_id not in blocked
        indirect = c.get("/", params={"vector": "indirect", "rule": "injection.override."}).text
        assert s.xss_id in indirect and s.injection_id in indirect and s.clean_ids[0] not in indirect
        by_source = c.get("/", params={"source": '"><script>'}).text
        assert s.xss_id in by_source and s.injection_id not in by_source
        by_client = c.get("/", params={"client": "team-1"}).text
        assert s.clean_ids[1] in by_client and s.clean_ids[0] not in by_client
        assert s.injection_id not in c.get("/", params={"until": "2000-01-01T00:00"}).text
        r = c.get("/", params={"severity": "extreme"})
        assert r.status_code == 400 and "severity must be one of" in r.text
        assert c.get("/", params={"since": "yesterday"}).status_code == 400
        # paging: two per page, newest first, each page continues below the last seq shown
        seen: list[str] = []
        url = "/?limit=2"
        while url:
            page = c.get(url).text
            seen += re.findall(r'class="bundle-link">([0-9A-Z]{26})<', page)
            more = re.search(r'href="([^"]+)" id="older"', page)
            url = more.group(1).replace("&amp;", "&") if more else ""
        assert seen == [s.xss_id, s.injection_id, *reversed(s.clean_ids)]


def test_labels_need_the_csrf_token_and_feed_the_corpus(console: ConsoleHandle,
                                                       seeded: tuple[Store, Seeded]) -> None:
    store, s = seeded
    path = f"/bundles/{s.injection_id}"
    with logged_in(console, reviewer="rita") as c:
        token = csrf_of(c, path)
        r = c.post(f"{path}/label", data={"verdict": "true_positive", "note": "no csrf"})
        assert r.status_code == 403 and "CSRF" in r.text
        r = c.post(f"{path}/label", data={"verdict": "true_positive", "csrf": "forged"})
        assert r.status_code == 403
        r = c.post(f"{path}/label", data={"verdict": "true_positive", "csrf": token},
                   headers={"origin": "https://evil.example"})
        assert r.status_code == 403
        assert s.injection_id not in store.labels()
        r = c.post(f"{path}/label", data={"verdict": "maybe", "csrf": token})
        assert r.status_code == 400
        r = c.post(f"{path}/label", data={"verdict": "needs_rule", "note": "<i>new phrasing</i>", "csrf": token})
        assert r.status_code == 303
        label = store.labels()[s.injection_id]
        assert (label.verdict, label.note, label.reviewer) == ("needs_rule", "<i>new phrasing</i>", "rita")
        page = c.get(path).text
        assert "needs rule by rita" in page and "&lt;i&gt;new phrasing&lt;/i&gt;" in page
        assert s.injection_id in c.get("/", params={"label": "needs_rule"}).text
        assert s.xss_id not in c.get("/", params={"label": "needs_rule"}).text
    data = store.get(s.injection_id)
    assert data is not None
    lines = corpus_lines(json.loads(data), label.verdict)
    assert lines and all(x["label"] == "injection" and x["vector"] == "indirect" for x in lines)


def test_other_sessions_csrf_token_and_logout(console: ConsoleHandle, seeded: tuple[Store, Seeded]) -> None:
    path = f"/bundles/{seeded[1].injection_id}"
    with logged_in(console) as a, logged_in(console) as b:
        token_a = csrf_of(a, path)
        assert b.post(f"{path}/label", data={"verdict": "false_positive", "csrf": token_a}).status_code == 403
        assert a.post("/logout", data={"csrf": token_a}).status_code == 303
        assert a.get("/").status_code == 303  # the session is gone on the server, not just the cookie


def test_report_and_export_download(console: ConsoleHandle, seeded: tuple[Store, Seeded], tmp_path: Path) -> None:
    s = seeded[1]
    with logged_in(console) as c:
        r = c.get(f"/bundles/{s.injection_id}/report.md")
        assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
        assert r.text.startswith("# Incident report") and "indirect prompt injection" in r.text
        r = c.get(f"/bundles/{s.injection_id}/export.zip")
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        (tmp_path / "e.zip").write_bytes(r.content)
        assert check_export(tmp_path / "e.zip") == (1, [])
        assert zipfile.ZipFile(io.BytesIO(r.content)).namelist() == [f"bundles/{s.injection_id}.json",
                                                                      "manifest.json"]
        assert c.get("/bundles/01ARZ3NDEKTSV4RRFFQ69G5FAV/export.zip").status_code == 404


def test_bundle_page_shows_chain_trust_and_withheld_calls(console: ConsoleHandle,
                                                         seeded: tuple[Store, Seeded]) -> None:
    with logged_in(console) as c:
        page = c.get(f"/bundles/{seeded[1].injection_id}").text
        assert 'id="chain-status" class="ok"' in page
        assert all(re.search(rf">{who} \(\d+\)<", page) for who in ("operator", "user", "untrusted"))
        assert "WITHHELD" in page and "send_email" in page
        assert "injection.override.ignore_previous" in page
        assert 'id="coverage-summary">complete: <b>' in page and '<table class="rows" id="coverage">' in page
        verify = c.get("/verify").text
        assert "chain intact" in verify and "OK: 5 bundle(s)" in verify
        sources = c.get("/sources").text
        assert "fetch_page" in sources


def test_xss_payload_is_intact_in_the_bundle(seeded: tuple[Store, Seeded]) -> None:
    """Guards the XSS tests: the payload reaches the store unchanged, so escaping is what is tested."""
    data = seeded[0].get(seeded[1].xss_id)
    assert data is not None
    texts = [seg["text"] for seg in json.loads(data)["segments"]]
    assert XSS_PAYLOAD in texts


@pytest.mark.parametrize("path", ["/bundles/../../etc/passwd", "/bundles/%2e%2e%2fx"])
def test_odd_ids_are_not_found(console: ConsoleHandle, path: str) -> None:
    with logged_in(console) as c:
        assert c.get(path).status_code == 404
