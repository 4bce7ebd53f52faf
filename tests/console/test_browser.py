"""The review console in a real browser (Debian's chromium driven by Playwright): logging in,
filtering, opening an injection, labelling it, the CSRF check, and XSS payloads that must not run.

Chromium comes from the system package (CI installs it); nothing is downloaded at test time.
Outside CI the tests skip, naming the reason, when the browser is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console.conftest import TOKEN, Seeded, seed

from proxy.console.server import ConsoleHandle, start_in_thread
from proxy.evidence.store import Store, open_store

CHROMIUM = os.environ.get("GUARDPROXY_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTEFACTS = Path(os.environ.get("GUARDPROXY_ARTEFACTS", Path(__file__).parents[2] / "artefacts"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        reason = f"no chromium at {CHROMIUM} (apt-get install chromium, or set GUARDPROXY_TEST_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need chromium in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[ConsoleHandle, Store, Seeded]]:
    store = open_store(tmp_path / "evidence")
    seeded = seed(store)
    handle = start_in_thread(store, TOKEN)
    yield handle, store, seeded
    handle.stop()
    store.close()


class Watch:
    """Everything a page could do to show script ran: dialogs, console output, page errors."""

    def __init__(self, page: Any) -> None:
        self.dialogs: list[str] = []
        self.console: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(str(e)))


def login(page: Any, url: str, token: str = TOKEN) -> None:
    page.goto(f"{url}/login")
    page.fill("#token", token)
    page.fill("#reviewer", "rita")
    page.click("#login")


def test_login_refuses_a_wrong_token_and_accepts_the_right_one(browser: Any, site: Any) -> None:
    console, _, seeded = site
    page = browser.new_page()
    page.goto(console.url + "/")
    assert page.url == console.url + "/login"  # no session: to the form
    login(page, console.url, "not-the-token-at-all")
    assert page.locator("#login-error").inner_text() == "That is not the reviewer token."
    assert page.context.cookies() == []
    login(page, console.url)
    assert page.url == console.url + "/"
    assert page.locator(f"text={seeded.injection_id}").count() == 1
    [cookie] = page.context.cookies()
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert TOKEN not in page.url and TOKEN not in page.content()
    assert page.evaluate("document.cookie") == ""  # HttpOnly: script cannot read the session
    page.close()


def test_filter_open_an_injection_and_label_it(browser: Any, site: Any) -> None:
    console, store, seeded = site
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    watch = Watch(page)
    login(page, console.url)
    page.select_option("#f-vector", "indirect")
    page.select_option("#f-action", "segregate")
    page.click("#apply")
    links = page.locator("a.bundle-link")
    assert links.all_inner_texts() == [seeded.injection_id]  # the blocked XSS one and clean ones filtered out
    assert "vector=indirect" in page.url and "action=segregate" in page.url
    links.first.click()
    assert page.url == f"{console.url}/bundles/{seeded.injection_id}"
    untrusted = page.locator("section.trust-untrusted article.segment")
    mark = untrusted.locator("mark.finding")
    assert mark.inner_text() == "ignore previous instructions"
    assert mark.get_attribute("title") == "injection.override.ignore_previous"
    assert "untrusted (1)" in page.locator("section.trust-untrusted h3").inner_text()
    assert "source fetch_page" in untrusted.locator(".seg-head").inner_text()
    assert page.locator("#chain-status").inner_text().startswith("intact")
    assert "WITHHELD" in page.locator("#tool-calls").inner_text()
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / "console-bundle.png"), full_page=True)
    page.check("#verdict-true_positive")
    page.fill("#note", "confirmed: wiki page edited by an outsider")
    page.click("#save-label")
    assert page.url.endswith(f"/bundles/{seeded.injection_id}#label")
    assert page.locator("#current-label").inner_text().startswith("injection by rita")
    label = store.labels()[seeded.injection_id]
    assert (label.verdict, label.note) == ("true_positive", "confirmed: wiki page edited by an outsider")
    page.goto(f"{console.url}/?label=true_positive")
    assert page.locator("a.bundle-link").all_inner_texts() == [seeded.injection_id]
    assert watch.errors == [] and not [m for m in watch.console if m.startswith("error")]  # CSP breaks nothing
    page.close()


def test_a_label_without_the_csrf_token_is_refused(browser: Any, site: Any) -> None:
    console, store, seeded = site
    page = browser.new_page()
    login(page, console.url)
    page.goto(f"{console.url}/bundles/{seeded.injection_id}")
    page.evaluate("document.querySelector('#label-form input[name=csrf]').remove()")
    page.check("#verdict-false_positive")
    with page.expect_navigation():
        page.click("#save-label")
    assert "CSRF check failed" in page.content()
    assert seeded.injection_id not in store.labels()
    page.close()


@pytest.mark.parametrize("csp", ["bypassed", "enforced"])
def test_xss_in_a_bundle_does_not_execute(browser: Any, site: Any, csp: str) -> None:
    """With the CSP bypassed, escaping alone must stop every payload; with it, both layers do."""
    console, _, seeded = site
    context = browser.new_context(bypass_csp=csp == "bypassed")
    page = context.new_page()
    watch = Watch(page)
    login(page, console.url)
    for path in ("/", f"/bundles/{seeded.xss_id}", "/sources", "/?source=%22%3E%3Cscript%3E"):
        page.goto(console.url + path)
        page.mouse.move(200, 200)
        page.hover("body")
        assert page.evaluate("typeof window.__xss") == "undefined", path
        dom = page.evaluate("""() => ({
            scripts: document.querySelectorAll('script').length,
            handlers: [...document.querySelectorAll('*')].filter(e =>
                [...e.attributes].some(a => a.name.startsWith('on'))).length,
            jsLinks: document.querySelectorAll('a[href^="javascript:" i]').length,
            imgs: document.querySelectorAll('img, svg, iframe, object, embed').length,
            styles: document.querySelectorAll('body style').length,
        })""")
        assert dom == {"scripts": 0, "handlers": 0, "jsLinks": 0, "imgs": 0, "styles": 0}, path
    page.goto(f"{console.url}/bundles/{seeded.xss_id}")
    text = page.locator("article.segment pre.text").last.inner_text()
    assert '<script>window.__xss = "script"; alert("script")</script>' in text
    assert "<a href=\"javascript:alert('link')\">open the report</a>" in text
    assert "<script>" in page.locator("article.segment mark.finding").inner_text()
    assert page.locator("body").is_visible()  # the injected <style> did not hide the page
    assert watch.dialogs == [] and watch.errors == []
    context.close()
