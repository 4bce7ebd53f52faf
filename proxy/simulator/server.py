"""Build the simulator's aiohttp app (API plus /_sim control endpoints) and run it.

`start_in_thread` gives tests and the demo a live upstream on its own event loop; `serve` runs in
the caller's loop for the `guardproxy simulate` command.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import threading
from typing import Any

from aiohttp import web

from proxy.simulator import anthropic_api, openai_api, responses_api
from proxy.simulator.config import STATE_KEY, SimConfig, SimState

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024  # long contexts are the point of some benchmarks
# Stalled handlers must not hold up stop(): after this long they are cancelled.
SHUTDOWN_TIMEOUT_S = 1.0
START_TIMEOUT_S = 30.0


def build_app(state: SimState) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[STATE_KEY] = state
    openai_api.add_routes(app)
    anthropic_api.add_routes(app)
    responses_api.add_routes(app)
    app.router.add_post("/_sim/config", _post_config)
    app.router.add_get("/_sim/stats", _get_stats)
    return app


async def _post_config(request: web.Request) -> web.Response:
    try:
        changes = await request.json()
    except ValueError:
        return _bad_config("the body must be a JSON object of SimConfig fields")
    if not isinstance(changes, dict):
        return _bad_config("the body must be a JSON object of SimConfig fields")
    try:
        config = request.app[STATE_KEY].configure(changes)
    except ValueError as exc:
        return _bad_config(str(exc))
    return web.json_response(dataclasses.asdict(config))


def _bad_config(message: str) -> web.Response:
    return openai_api.error_response(400, message, "invalid_request_error", "invalid_config")


async def _get_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].stats())


async def _start(host: str, port: int, state: SimState, quiet: bool) -> tuple[web.AppRunner, int]:
    logging_options: dict[str, Any] = {"access_log": None} if quiet else {}
    runner = web.AppRunner(
        build_app(state),
        # Cancel a handler when its client goes away, so stalls don't outlive their tests.
        handler_cancellation=True,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        **logging_options,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    return runner, int(bound)


class SimulatorHandle:
    """A simulator running on its own event loop in a daemon thread."""

    def __init__(
        self,
        host: str,
        port: int,
        state: SimState,
        loop: asyncio.AbstractEventLoop,
        thread: threading.Thread,
        runner: web.AppRunner,
    ) -> None:
        self.host = host
        self.port = port
        url_host = f"[{host}]" if ":" in host else host
        self.url = f"http://{url_host}:{port}/v1"
        self._state = state
        self._loop = loop
        self._thread = thread
        self._runner = runner
        self._stop_lock = threading.Lock()
        self._stopped = False

    def configure(self, **changes: Any) -> None:
        """Change SimConfig fields at run time; ValueError for unknown fields or bad values."""
        self._state.configure(changes)

    def stats(self) -> dict[str, Any]:
        """The same as GET /_sim/stats."""
        return self._state.stats()

    def stop(self) -> None:
        """Stop the server and join its thread; calling it again does nothing."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        cleanup = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        try:
            cleanup.result(timeout=SHUTDOWN_TIMEOUT_S + 10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_in_thread(host: str = "127.0.0.1", port: int = 0, config: SimConfig | None = None) -> SimulatorHandle:
    """Start a simulator in a daemon thread; returns once it listens (port 0 picks a free port)."""
    state = SimState(config or SimConfig())
    loop = asyncio.new_event_loop()
    started: concurrent.futures.Future[tuple[web.AppRunner, int]] = concurrent.futures.Future()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            started.set_result(loop.run_until_complete(_start(host, port, state, quiet=True)))
        except BaseException as exc:  # hand any start failure (port in use...) to the caller
            started.set_exception(exc)
            loop.close()
            return
        loop.run_forever()
        _drain(loop)

    thread = threading.Thread(target=run, name="guardproxy-simulator", daemon=True)
    thread.start()
    runner, bound = started.result(timeout=START_TIMEOUT_S)
    return SimulatorHandle(host, bound, state, loop, thread, runner)


def _drain(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on the loop and close it, so no 'task destroyed' warnings leak."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


async def serve(host: str, port: int, config: SimConfig) -> None:
    """Run a simulator in the current event loop until cancelled."""
    runner, bound = await _start(host, port, SimState(config), quiet=False)
    log.info("simulated upstream listening on %s:%d", host, bound)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
