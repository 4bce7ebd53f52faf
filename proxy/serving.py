"""Runs the proxy under uvicorn: in the foreground (`guardproxy serve`) or in a thread (demo, tests).

uvloop and httptools are installed, so uvicorn picks them. The process-wide upstream client lives
in the app's lifespan. With `workers` > 1 uvicorn's supervisor starts that many processes on one
socket; each worker builds its own settings from the same config file, flags and environment.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from proxy.app import create_app
from proxy.errors import ConfigError
from proxy.http_limits import LimitedHttpToolsProtocol, protocol_for
from proxy.policy.auth import exposure_problem
from proxy.policy.loader import load_policy
from proxy.settings import Settings, load_settings

# How a worker process learns what `guardproxy serve` was given: the config file and the flags. The
# environment it inherits supplies the rest, so every worker builds exactly the parent's settings.
WORKER_SETTINGS_ENV = "GUARDPROXY_SERVE_ARGUMENTS"


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The server options, the same for one process or many."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": 5,
        # Header size, count and read time are checked on the raw connection (http_limits.py). A
        # module-level class: worker processes receive it by name and bind their own limits.
        "http": LimitedHttpToolsProtocol,
        "timeout_keep_alive": int(settings.http.keep_alive_idle_s + 0.999),
    }


def uvicorn_config(settings: Settings, **app_kwargs: object) -> uvicorn.Config:
    # One process may run several proxies (tests, the demo): each gets a protocol bound to its limits.
    options = uvicorn_options(settings) | {"http": protocol_for(settings.http)}
    return uvicorn.Config(create_app(settings, **app_kwargs), **options)  # type: ignore[arg-type]


def worker_count(settings: Settings) -> int:
    return settings.workers or os.cpu_count() or 1


def run(settings: Settings, config: Path | None = None, flags: dict[str, Any] | None = None) -> None:
    check_exposure(settings)
    workers = worker_count(settings)
    if workers == 1:
        uvicorn.Server(uvicorn_config(settings)).run()
        return
    os.environ[WORKER_SETTINGS_ENV] = json.dumps({"config": str(config) if config else None, "flags": flags or {}})
    # The supervisor restarts a worker that does not answer its ping in time; start-up (rules, Presidio)
    # can take many seconds on a busy machine, so the default 5 s would kill healthy workers.
    uvicorn.run("proxy.serving:worker_app", factory=True, workers=workers, timeout_worker_healthcheck=60,
                **uvicorn_options(settings))


def worker_app() -> Any:
    """The app of one worker process (uvicorn calls this factory in each one it starts)."""
    given = json.loads(os.environ[WORKER_SETTINGS_ENV])
    config = Path(given["config"]) if given["config"] else None
    settings = load_settings(config, **given["flags"])
    LimitedHttpToolsProtocol.limits = settings.http  # this worker's connections, before any arrives
    return create_app(settings)


def check_exposure(settings: Settings) -> None:
    """Refuse (ConfigError, one line) to serve a non-loopback address as an open relay."""
    policy = load_policy(settings.policy_path)
    problem = exposure_problem(settings.host, bool(policy.clients), settings.allow_unauthenticated)
    if problem is not None:
        raise ConfigError(problem)


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
