"""The upstream client: it keeps no cookies, so nothing one exchange's upstream set rides on the next."""

from __future__ import annotations

import pytest
from aiohttp import web

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
