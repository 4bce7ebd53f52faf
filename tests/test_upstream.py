"""The upstream client: keeps no cookies (nothing one exchange's upstream set rides on the next) and
caches parsed URLs within a bound."""

from __future__ import annotations

import pytest
from aiohttp import web

from proxy.errors import UpstreamError
from proxy.settings import load_settings
from proxy.upstream import Upstream


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_cookie_the_upstream_sets_is_never_sent_back(transport: str) -> None:
    seen: list[str | None] = []

    async def models(request: web.Request) -> web.Response:
        seen.append(request.headers.get("cookie"))
        response = web.json_response({"object": "list", "data": []})
        response.set_cookie("session", "for-the-first-client", path="/")
        return response

    app = web.Application()
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    upstream = Upstream(load_settings(upstream_url=f"http://127.0.0.1:{port}/v1", upstream_transport=transport))
    try:
        for _ in range(2):
            response = await upstream.send("GET", "/models", headers=upstream.headers({}, has_body=False))
            assert "set-cookie" in response.headers  # the upstream did set one
            await response.aclose()
    finally:
        await upstream.aclose()
        await runner.cleanup()
    assert seen == [None, None]


async def test_parsed_urls_are_cached_within_a_bound() -> None:
    upstream = Upstream(load_settings(upstream_url="http://127.0.0.1:9/v1"))
    try:
        for i in range(200):  # paths with client-chosen ids: each fails to connect, none is kept past the bound
            with pytest.raises(UpstreamError):
                await upstream.send("GET", f"/responses/resp_{i}", headers={})
        assert len(upstream._urls) <= 16
    finally:
        await upstream.aclose()
