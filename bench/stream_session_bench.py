"""The stream path per upstream event, sans I/O: CPU, Python calls, call depth and module hops.

Drives text deltas of both wire formats through the codec, the stream session and the SSE encoder
(what the pump does per event, minus the sockets) for three configurations: no output stages,
`output_leak` (an incremental inspector behind the hold-back gate), and `pii` restoring masked
placeholders in flight (a text rewriter, nothing held). Prints CPU µs per event (best of three
runs), its ratio to no stages in the same run, and from one traced event: Python calls, the
deepest call below the pump's loop, and the proxy modules visited in order.

    python bench/stream_session_bench.py [--events 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import sys
import time
from typing import Any

from httpx_sse import ServerSentEvent

from proxy.guards.output_leak import OutputLeakGuard
from proxy.guards.pii import build as build_pii
from proxy.model import Exchange, Phase
from proxy.pipeline import Pipeline, Stage
from proxy.providers import anthropic_messages, openai_chat
from proxy.providers.base import WireAPI
from proxy.settings import Settings, StageSettings
from proxy.streaming.session import StreamSession
from proxy.streaming.sse import encode_event

SYSTEM = "You are a helpful assistant for the finance team."
APIS: dict[str, WireAPI] = {"openai": openai_chat.OPENAI, "anthropic": anthropic_messages.ANTHROPIC}


def deltas(api: str, n: int) -> list[ServerSentEvent]:
    if api == "openai":
        base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        return [ServerSentEvent(data=json.dumps(base | {"choices": [
            {"index": 0, "delta": {"content": f"word{i} "}, "finish_reason": None}]})) for i in range(n)]
    return [ServerSentEvent(event="content_block_delta", data=json.dumps(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"word{i} "}}))
        for i in range(n)]


def prelude(api: str) -> list[ServerSentEvent]:
    if api == "openai":
        return []
    message = {"id": "m", "type": "message", "role": "assistant", "model": "m", "content": [],
               "usage": {"input_tokens": 1, "output_tokens": 1}}
    return [ServerSentEvent(event="message_start", data=json.dumps({"type": "message_start", "message": message})),
            ServerSentEvent(event="content_block_start", data=json.dumps(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))]


def session(api: str, config: str) -> StreamSession:
    user = "mail jane.roe@example.org" if config == "pii restore" else "hi"
    body: dict[str, Any] = {"model": "m", "max_tokens": 5, "system": SYSTEM,
                            "messages": [{"role": "user", "content": user}]}
    if api == "openai":
        body = {"model": "m", "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]}
    stages = []
    if config == "output_leak":
        stages = [Stage(OutputLeakGuard(), StageSettings(name="output_leak"))]
    elif config == "pii restore":
        pii = build_pii(Settings(), {"actions": {"EMAIL_ADDRESS": "mask"}, "output_actions": {"default": "tag"}})
        stages = [Stage(pii, StageSettings(name="pii", timeout_s=60))]
    pipeline = Pipeline(stages)
    exchange = Exchange("r", APIS[api].parse(body))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # its own loop: callers may be inside one
        pool.submit(asyncio.run, pipeline.run(exchange, Phase.INPUT)).result()
    return StreamSession(pipeline, exchange, APIS[api].stream_codec())


async def pump_one(s: StreamSession, event: ServerSentEvent) -> None:
    for part in s.codec.parts(event):
        for item in await s.process(part):
            encode_event(item)


def cpu_per_event(api: str, config: str, n: int) -> float:
    async def go() -> float:
        s = session(api, config)
        for e in prelude(api):
            await pump_one(s, e)
        events = deltas(api, n)
        start = time.process_time()
        for e in events:
            await pump_one(s, e)
        return (time.process_time() - start) / n * 1e6
    return min(asyncio.run(go()) for _ in range(3))


def trace_one(api: str, config: str) -> tuple[int, int, list[str]]:
    s = session(api, config)
    loop = asyncio.new_event_loop()
    for e in [*prelude(api), *deltas(api, 40)]:
        loop.run_until_complete(pump_one(s, e))
    calls, deepest, modules, base = 0, 0, [], None

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls, deepest, base
        if event != "call":
            return
        depth, f = 0, frame
        while f is not None:
            depth, f = depth + 1, f.f_back
        base = depth if base is None else base
        calls += 1
        deepest = max(deepest, depth - base)
        module = frame.f_globals.get("__name__", "")
        if module.startswith("proxy.") and (not modules or modules[-1] != module):
            modules.append(module)

    async def traced(event: ServerSentEvent) -> None:
        sys.setprofile(profile)
        await pump_one(s, event)
        sys.setprofile(None)

    loop.run_until_complete(traced(deltas(api, 50)[45]))
    loop.close()
    return calls, deepest, [m.removeprefix("proxy.") for m in modules]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=4000)
    args = parser.parse_args()
    print("| API | configuration | CPU µs per event | ratio to no stages | Python calls | depth | module hops |")
    print("|---|---|---|---|---|---|---|")
    for api in APIS:
        floor = 0.0
        for config in ("no stages", "output_leak", "pii restore"):
            cpu = cpu_per_event(api, config, args.events)
            floor = floor or cpu
            calls, depth, modules = trace_one(api, config)
            print(f"| {api} | {config} | {cpu:.1f} | {cpu / floor:.2f} | {calls} | {depth} | "
                  f"{len(modules)}: {' > '.join(modules)} |")


if __name__ == "__main__":
    main()
