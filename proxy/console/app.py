"""The review console's routes: login, the bundle list, one bundle, labels, downloads, sources, verify.

A separate Starlette app over one evidence store, never mounted in the proxy. Pages are rendered
on the server by Jinja2 with autoescaping on for every template; no route renders markdown or
HTML from a bundle, and the only script or style is what the console itself serves from /static.
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import ChainableUndefined, Environment, FileSystemLoader
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.console import views
from proxy.console.auth import COOKIE, SECURITY_HEADERS, SESSION_SECONDS, Session, Sessions, csrf_ok
from proxy.evidence import report as report_mod
from proxy.evidence.chain import Link, verify
from proxy.evidence.export import write_export
from proxy.evidence.store import SEVERITIES, Filters, Label, Store

HERE = Path(__file__).parent
EVIDENCE_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
ACTIONS = ("allow", "tag", "segregate", "block")
VECTORS = ("direct", "indirect", "other")
# Reviewer verdicts, stored with the same label mechanism as `guardproxy evidence label`, so
# `guardproxy evidence corpus` picks them up: injection and needs-rule become injection samples.
VERDICTS = {"true_positive": "injection", "false_positive": "benign", "needs_rule": "needs rule"}
PAGE_SIZE, MAX_PAGE = 50, 500


class SecurityHeaders:
    """Adds the console's security headers to every response, errors and static files included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in SECURITY_HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Console:
    def __init__(self, store: Store, sessions: Sessions) -> None:
        self.store = store
        self.sessions = sessions
        self.lock = threading.Lock()  # one store connection; endpoints run in a thread pool
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                               undefined=ChainableUndefined, trim_blocks=True, lstrip_blocks=True)
        self.env.globals.update(trust_name=views.TRUST_NAME, verdicts=VERDICTS, pretty=views.pretty)

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        session = self.session(request)
        html = self.env.get_template(name).render(
            session=session, store=self.store.location, path=request.url.path, **context)
        return HTMLResponse(html, status)

    def session(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))


def _same_origin(request: Request) -> bool:
    """A browser names the page a POST came from; anything from another origin is refused even
    before the CSRF token is looked at (SameSite=Strict already keeps the cookie off it)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


def guarded(c: Console, handler: Callable[[Request, Session], Response]) -> Callable[[Request], Response]:
    """Pages need a session: without one, to the login form. (POSTs check their CSRF token themselves.)"""

    def endpoint(request: Request) -> Response:
        session = c.session(request)
        if session is None:
            if request.method == "GET":
                return RedirectResponse("/login", 303)
            return PlainTextResponse("not logged in", 403)
        return handler(request, session)

    return endpoint


def build_app(store: Store, token: str) -> Starlette:
    """The console over `store`, for reviewers holding `token`."""
    c = Console(store, Sessions(token))

    def login_form(request: Request) -> Response:
        return c.page(request, "login.html", error=None)

    async def login(request: Request) -> Response:
        form = await request.form()
        if not _same_origin(request):
            return PlainTextResponse("cross-origin login refused", 403)
        reviewer = str(form.get("reviewer") or "").strip()[:80] or "console"
        sid = c.sessions.login(str(form.get("token") or ""), reviewer)
        if sid is None:
            return c.page(request, "login.html", 401, error="That is not the reviewer token.")
        response = RedirectResponse("/", 303)
        response.set_cookie(COOKIE, sid, max_age=SESSION_SECONDS, path="/", secure=True, httponly=True,
                            samesite="strict")
        return response

    async def logout(request: Request) -> Response:
        form = await request.form()
        session = c.session(request)
        if session is not None and _same_origin(request) and csrf_ok(session, str(form.get("csrf") or "")):
            c.sessions.logout(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", 303)
        response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return response

    def bundle_list(request: Request, session: Session) -> Response:
        q = request.query_params
        args = {k: q.get(k, "").strip() for k in
                ("since", "until", "action", "severity", "rule", "vector", "client", "source", "label")}
        error = _filter_problem(args)
        if error:
            return c.page(request, "list.html", 400, rows=[], labels={}, args=args, error=error, next_url=None,
                          actions=ACTIONS, severities=SEVERITIES, vectors=VECTORS)
        size = _int(q.get("limit"), PAGE_SIZE, 1, MAX_PAGE)
        before = _int(q.get("before"), 0, 0, 2**62) or None
        with c.lock:
            labels = c.store.labels()
            ids = frozenset(k for k, v in labels.items() if v.verdict == args["label"]) if args["label"] else None
            rows = c.store.rows(Filters(
                since=args["since"] or None, until=args["until"] or None, client=args["client"] or None,
                severity=args["severity"] or None, rule=args["rule"] or None, vector=args["vector"] or None,
                source=args["source"] or None, limit=size + 1, action=args["action"] or None,
                before_seq=before, ids=ids))
        next_url = None
        if len(rows) > size:
            rows = rows[:size]
            kept = {k: v for k, v in args.items() if v}
            next_url = "/?" + urlencode({**kept, "limit": size, "before": rows[-1].seq})
        return c.page(request, "list.html", rows=rows, labels=labels, args=args, error=None, next_url=next_url,
                      actions=ACTIONS, severities=SEVERITIES, vectors=VECTORS)

    def _load(evidence_id: str) -> tuple[bytes, dict[str, Any]] | None:
        if not EVIDENCE_ID.match(evidence_id):
            return None
        with c.lock:
            data = c.store.get(evidence_id)
        if data is None:
            return None
        loaded: dict[str, Any] = json.loads(data)
        return data, loaded

    def bundle_page(request: Request, session: Session) -> Response:
        found = _load(request.path_params["id"])
        if found is None:
            return c.page(request, "error.html", 404, message="No bundle with that id in this store.")
        data, b = found
        with c.lock:
            chain = views.chain_status(c.store, data, b)
            label = c.store.labels().get(b["id"])
        return c.page(request, "bundle.html", b=b, groups=views.segments_by_trust(b), chain=chain, label=label,
                      output_findings=views.output_findings(b), coverage=views.coverage_of(b))

    async def label(request: Request) -> Response:
        session = c.session(request)
        form = await request.form()
        if session is None:
            return PlainTextResponse("not logged in", 403)
        if not _same_origin(request) or not csrf_ok(session, str(form.get("csrf") or "")):
            return PlainTextResponse("CSRF check failed: reload the bundle page and label again", 403)
        evidence_id = request.path_params["id"]
        verdict = str(form.get("verdict") or "")
        if verdict not in VERDICTS:
            return PlainTextResponse(f"verdict must be one of {', '.join(VERDICTS)}", 400)
        note = str(form.get("note") or "")[:4000]
        return await run_in_threadpool(_save_label, evidence_id, verdict, note, session.reviewer)

    def _save_label(evidence_id: str, verdict: str, note: str, reviewer: str) -> Response:
        if _load(evidence_id) is None:
            return PlainTextResponse("no bundle with that id", 404)
        with c.lock:
            c.store.label(Label(evidence_id, verdict, note, reviewer, datetime.now(UTC).isoformat(timespec="seconds")))
        return RedirectResponse(f"/bundles/{evidence_id}#label", 303)

    def report(request: Request, session: Session) -> Response:
        found = _load(request.path_params["id"])
        if found is None:
            return PlainTextResponse("no bundle with that id", 404)
        with c.lock:
            labels = {k: v.verdict for k, v in c.store.labels().items()}
        text = report_mod.render([found[1]], labels)
        return Response(text, media_type="text/markdown; charset=utf-8", headers=_attachment(
            f"incident-{found[1]['id']}.md"))

    def export(request: Request, session: Session) -> Response:
        found = _load(request.path_params["id"])
        if found is None:
            return PlainTextResponse("no bundle with that id", 404)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "export.zip"
            with c.lock:
                write_export(c.store, [found[1]["id"]], path)
            data = path.read_bytes()
        return Response(data, media_type="application/zip", headers=_attachment(f"evidence-{found[1]['id']}.zip"))

    def sources(request: Request, session: Session) -> Response:
        since = request.query_params.get("since", "").strip() or None
        until = request.query_params.get("until", "").strip() or None
        with c.lock:
            rows = c.store.rows(Filters(since=since, until=until, limit=2**62))
        return c.page(request, "sources.html", tally=views.source_tally(rows), since=since or "", until=until or "",
                      scanned=len(rows))

    def verify_page(request: Request, session: Session) -> Response:
        seen = [0]

        def counted(links: Iterator[Link]) -> Iterator[Link]:
            for item in links:
                seen[0] += 1
                yield item

        with c.lock:
            anchor = c.store.anchor()
            problems = list(verify(counted(c.store.links()), anchor))
            extras = c.store.extras()
        count = seen[0]
        return c.page(request, "verify.html", ok=not problems, problems=problems[:50], count=count, anchor=anchor,
                      extras=extras)

    routes = [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", guarded(c, bundle_list), methods=["GET"]),
        Route("/bundles/{id}", guarded(c, bundle_page), methods=["GET"]),
        Route("/bundles/{id}/label", label, methods=["POST"]),
        Route("/bundles/{id}/report.md", guarded(c, report), methods=["GET"]),
        Route("/bundles/{id}/export.zip", guarded(c, export), methods=["GET"]),
        Route("/sources", guarded(c, sources), methods=["GET"]),
        Route("/verify", guarded(c, verify_page), methods=["GET"]),
        Route("/favicon.ico", lambda request: Response(status_code=204), methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(SecurityHeaders)
    return app


def _filter_problem(args: dict[str, str]) -> str | None:
    """A precise message for a filter value the index cannot mean."""
    choices = {"action": ACTIONS, "severity": tuple(SEVERITIES), "vector": VECTORS, "label": tuple(VERDICTS)}
    for name, allowed in choices.items():
        if args[name] and args[name] not in allowed:
            return f"{name} must be one of: {', '.join(allowed)}"
    for name in ("since", "until"):
        if args[name]:
            try:
                datetime.fromisoformat(args[name])
            except ValueError:
                return f"{name} must be an ISO 8601 time (UTC), e.g. 2026-11-30T08:00"
    return None


def _int(text: str | None, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(text))) if text else default
    except ValueError:
        return default


def _attachment(name: str) -> dict[str, str]:
    return {"content-disposition": f'attachment; filename="{name}"'}
