"""Running the review console: in the foreground for `guardproxy evidence serve`, or on a thread
(tests, benchmarks) returning once it listens."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import uvicorn

from proxy.console.app import build_app
from proxy.evidence.store import Store
from proxy.serving import free_port


@dataclass
class ConsoleHandle:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def config(store: Store, token: str, host: str, port: int, log_level: str = "info",
           **tls: str | None) -> uvicorn.Config:
    return uvicorn.Config(build_app(store, token), host=host, port=port, log_level=log_level,
                          ssl_certfile=tls.get("ssl_certfile"), ssl_keyfile=tls.get("ssl_keyfile"))


def start_in_thread(store: Store, token: str, host: str = "127.0.0.1", port: int = 0) -> ConsoleHandle:
    port = port or free_port(host)
    server = uvicorn.Server(config(store, token, host, port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="guardproxy-console", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the review console did not start")
        time.sleep(0.01)
    return ConsoleHandle(f"http://{host}:{port}", server, thread)
