"""What telemetry costs per request: telemetry off vs the default settings vs full export.

Starts the simulated upstream, a local OTLP/HTTP sink (accepts and discards), and one
`guardproxy serve` per configuration, all configured only through the standard OTEL_* variables:

  off      OTEL_SDK_DISABLED=true: no spans, no metrics (the floor)
  default  nothing set: no spans are created, metrics feed /metrics only
  traced   OTLP/HTTP traces + metrics to the sink, batch export (spans for every request)

Each target is driven with the raw-socket load client in interleaved rounds, so machine drift hits
all alike; the table shows latency, throughput and the proxy process's CPU time per request
(from /proc, the figure least disturbed by other load on the machine), relative to `off`.
Loopback only.

It first measures the telemetry hooks alone, in process (CPU time per synthetic request through
the real middleware, guard, queue and upstream-call hooks with five guard stages; `traced` here
encodes every span to OTLP protobuf synchronously, so export cost is counted too): the figure
that does not move with machine load.

    python bench/telemetry_overhead.py [--conc 1,8] [--n 400] [--rounds 3] [--micro-only]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from fakes import FakeGuard
from loadclient import Result, run
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from overhead import BIN, conversation, free_port, merged, start, wait_ready

from proxy.admission import Admission
from proxy.model import (
    Conversation,
    Exchange,
    Location,
    Output,
    Phase,
    Provenance,
    Segment,
    Timings,
    Trust,
)
from proxy.pipeline import Pipeline, Stage
from proxy.settings import AdmissionSettings, StageSettings
from proxy.telemetry import Telemetry, TelemetryMiddleware


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that accepts everything: export cost without a collector's."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


def start_sink() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class _EncodeOnly(SpanExporter):
    """Pays the OTLP protobuf encoding of every span, then drops it."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializeToString()
        return SpanExportResult.SUCCESS


def _micro_telemetry(label: str) -> Telemetry:
    if label == "off":
        return Telemetry.from_env({"OTEL_SDK_DISABLED": "true"})
    if label == "default":
        return Telemetry.from_env({})
    tel = Telemetry.from_env({})
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EncodeOnly()))
    tel.tracer_provider, tel.tracer = provider, provider.get_tracer("bench")
    return tel


async def _one_request(app: TelemetryMiddleware, pipeline: Pipeline, tel: Telemetry,
                       admission: Admission) -> None:
    conv = Conversation("openai.chat", "openai", "sim-gpt", False, (Segment(
        0, "user", "hello there", Trust.USER, Provenance("user"), Location(("messages", 0))),))

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        exchange = Exchange("req_bench", conv, timings=Timings(received=time.perf_counter()))
        scope["state"]["exchange"] = exchange
        with tel.scan(exchange, Phase.INPUT):
            await pipeline.run(exchange, Phase.INPUT)
        call = tel.upstream_call(exchange, "http://127.0.0.1:9/v1", await admission.admit(exchange))
        call.inject({})
        exchange.output = Output("hi", finish_reason="stop", response_id="c1", model="sim-gpt",
                                 input_tokens=5, output_tokens=2)
        exchange.upstream_status = 200
        call.upstream_done({})
        with tel.scan(exchange, Phase.OUTPUT):
            await pipeline.run(exchange, Phase.OUTPUT)
        exchange.timings.total_ms = 1.0
        call.end(exchange)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    app.app = inner

    async def send(message: Any) -> None:
        return None

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [],
             "scheme": "http", "client": ("127.0.0.1", 1)}
    await app(scope, None, send)  # type: ignore[arg-type]


async def _cpu_per_request(n: int, app: TelemetryMiddleware, pipeline: Pipeline, tel: Telemetry,
                           admission: Admission) -> float:
    for _ in range(200):  # warm-up
        await _one_request(app, pipeline, tel, admission)
    start = time.process_time()
    for _ in range(n):
        await _one_request(app, pipeline, tel, admission)
    return (time.process_time() - start) / n * 1e6


def micro(n: int = 3000) -> None:
    """CPU µs per request spent in telemetry hooks, by configuration (the rest of a request is
    identical in all three, so the differences are the telemetry cost)."""
    costs = {}
    for label in ("off", "default", "traced"):
        tel = _micro_telemetry(label)
        guards = [FakeGuard(f"g{i}", phases=frozenset({Phase.INPUT, Phase.OUTPUT})) for i in range(5)]
        pipeline = Pipeline([Stage(g, StageSettings(name=g.name)) for g in guards])
        pipeline.stage_hook = tel.stage
        admission = Admission(AdmissionSettings(), default_concurrency=8, upstream="127.0.0.1",
                              observer=tel)
        tel.watch(admission)
        app = TelemetryMiddleware(None, tel)  # type: ignore[arg-type]

        costs[label] = asyncio.run(_cpu_per_request(n, app, pipeline, tel, admission))
    print(f"\nin-process, {n} synthetic requests, 5 guard stages x 2 phases (12 spans when traced)\n")
    print("| telemetry | CPU µs/request | added vs off |")
    print("|---|---|---|")
    for label, us in costs.items():
        added = "" if label == "off" else f"{us - costs['off']:+.0f}"
        print(f"| {label} | {us:.0f} | {added} |")


def configs(sink: str) -> dict[str, dict[str, str]]:
    return {
        "off": {"OTEL_SDK_DISABLED": "true"},
        "default": {},
        "traced": {"OTEL_EXPORTER_OTLP_ENDPOINT": sink, "OTEL_METRIC_EXPORT_INTERVAL": "5000"},
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Cpu = dict[tuple[str, int], list[float]]  # (label, c) -> [cpu seconds, requests]


async def measure(targets: dict[str, str], pids: dict[str, int], conc: list[int], n: int,
                  rounds: int) -> tuple[dict[tuple[str, int], list[Result]], Cpu]:
    body = conversation()
    results: dict[tuple[str, int], list[Result]] = defaultdict(list)
    cpu: Cpu = defaultdict(lambda: [0.0, 0.0])
    for c in conc:
        for label, url in targets.items():  # warm-up
            await run(label, url, body, c, min(n, 100))
        for r in range(rounds):
            order = list(targets.items())
            for label, url in order if r % 2 == 0 else reversed(order):
                before = cpu_seconds(pids[label])
                result = await run(label, url, body, c, n)
                cpu[(label, c)][0] += cpu_seconds(pids[label]) - before
                cpu[(label, c)][1] += len(result.latencies_ms) + result.errors
                results[(label, c)].append(result)
    return results, cpu


def report(results: dict[tuple[str, int], list[Result]], cpu: Cpu, conc: list[int],
           labels: list[str]) -> None:
    print("\none proxy worker, default pipeline; added = vs telemetry off, per request\n")
    print("| telemetry | c | req/s | p50 ms | p99 ms | added p50 µs | CPU µs/req | added CPU µs/req "
          "| CPU ratio | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c in conc:
        off = merged(results[("off", c)])
        off_cpu = cpu[("off", c)][0] / cpu[("off", c)][1] * 1e6
        for label in labels:
            r = merged(results[(label, c)])
            per_req = cpu[(label, c)][0] / cpu[(label, c)][1] * 1e6
            added = "" if label == "off" else f"{(r.p50 - off.p50) * 1000:+.0f}"
            added_cpu = "" if label == "off" else f"{per_req - off_cpu:+.0f}"
            print(f"| {label} | {c} | {r.rps:.0f} | {r.p50:.2f} | {r.pct(0.99):.2f} | {added} | "
                  f"{per_req:.0f} | {added_cpu} | {per_req / off_cpu:.3f} | {r.errors} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conc", default="1,8")
    parser.add_argument("--n", type=int, default=400, help="requests per round per target")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--micro-only", action="store_true", help="only the in-process figures")
    args = parser.parse_args()
    micro()
    if args.micro_only:
        return
    conc = [int(c) for c in args.conc.split(",")]
    procs = []
    sink, sink_url = start_sink()
    try:
        port = free_port()
        procs.append(start([str(BIN / "guardproxy"), "simulate", "--port", str(port)]))
        upstream = f"http://127.0.0.1:{port}/v1"
        wait_ready(upstream + "/models", procs[-1])
        targets, pids = {}, {}
        for label, env in configs(sink_url).items():
            port = free_port()
            procs.append(start([str(BIN / "guardproxy"), "serve", "--port", str(port), "--upstream",
                                upstream], {"GUARDPROXY_LOG_LEVEL": "warning", **env}))
            wait_ready(f"http://127.0.0.1:{port}/healthz", procs[-1])
            targets[label] = f"http://127.0.0.1:{port}/v1/chat/completions"
            pids[label] = procs[-1].pid
        results, cpu = asyncio.run(measure(targets, pids, conc, args.n, args.rounds))
        report(results, cpu, conc, list(targets))
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
        sink.shutdown()


if __name__ == "__main__":
    main()
