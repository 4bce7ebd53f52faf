"""Runs the proxy under uvicorn: in the foreground (`guardproxy serve`) or in a thread (demo, tests).

uvloop and httptools are installed, so uvicorn picks them; one worker per process, and the
process-wide upstream client lives in the app's lifespan.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn

from proxy.app import create_app
from proxy.settings import Settings


def uvicorn_config(settings: Settings, **app_kwargs: object) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(settings, **app_kwargs),  # type: ignore[arg-type]
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )


def run(settings: Settings) -> None:
    uvicorn.Server(uvicorn_config(settings)).run()


@dataclass
class ProxyHandle:
    url: str  # base URL including /v1
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def start_in_thread(settings: Settings, **app_kwargs: object) -> ProxyHandle:
    """Start the proxy on its own loop in a daemon thread; returns once it is listening."""
    if settings.port == 0:
        settings = settings.model_copy(update={"port": free_port(settings.host)})
    server = uvicorn.Server(uvicorn_config(settings, **app_kwargs))
    server.config.log_level = settings.log_level
    thread = threading.Thread(target=server.run, name="guardproxy", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("guardproxy did not start")
        time.sleep(0.01)
    return ProxyHandle(f"http://{settings.host}:{settings.port}/v1", server, thread)
