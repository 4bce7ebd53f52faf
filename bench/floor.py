"""The floor: a minimal FastAPI + httpx-aiohttp pass-through with no guards, no telemetry, no evidence.

What a naive reverse proxy on the same stack costs; `overhead.py` runs it beside guardproxy so the
proxy's own cost is read as a ratio taken in the same run. It forwards the body to the upstream's
`/chat/completions` and relays status, content type and body.

    python bench/floor.py --port 9200 --upstream http://127.0.0.1:9100/v1
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response
from httpx_aiohttp import AiohttpTransport


def create_app(upstream: str) -> FastAPI:
    state: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # One client per process: creating one costs tens of milliseconds.
        state["client"] = httpx.AsyncClient(transport=AiohttpTransport(), timeout=60)
        yield
        await state["client"].aclose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.body()
        answer = await state["client"].post(f"{upstream}/chat/completions", content=body,
                                            headers={"content-type": "application/json"})
        return Response(answer.content, status_code=answer.status_code,
                        media_type=answer.headers.get("content-type"))

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(args.upstream.rstrip("/")), host="127.0.0.1", port=args.port,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
