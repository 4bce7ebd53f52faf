"""Review-console benchmark: rendering the bundle list over a store of 10,000 bundles.

Fills a store (files, and PostgreSQL when reachable) with N realistic bundles (one real flagged
bundle built by the proxy's builder, copied with varied clients, actions, rules and sources, then
linked into the chain as the proxy would), starts the console on loopback and times the pages a
reviewer opens: the first list page, a deep page (cursor near the oldest bundle), filtered lists
(index-side: action; scanned: rule, untrusted source, label), one bundle, and the same first page
over a store of 100 bundles (the ratio shows the list does not load every bundle).
Reports per page: median wall time and CPU per request (this process: server and client).

    .venv/bin/python bench/console_bench.py [--bundles N] [--repeat R] [--pg DSN]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from proxy.console.auth import COOKIE
from proxy.console.server import start_in_thread
from proxy.evidence.bundle import new_id
from proxy.evidence.store import Label, Store, open_store

TOKEN = "bench-review-token-0123456789"
RULES = ["injection.override.ignore_previous", "injection.exfil.markdown_image_beacon",
         "injection.role.developer_mode", "injection.leak.system_prompt"]
ACTIONS = ["allow", "tag", "segregate", "block"]


def template() -> dict:
    from console.conftest import built  # the proxy's own bundle builder over a flagged exchange
    from evidence.test_bundle import flagged_exchange

    return built(flagged_exchange())


def fill(store: Store, n: int, base: dict) -> list[str]:
    ids, batch = [], []
    start = time.time() - n
    for i in range(n):
        b = copy.deepcopy(base)
        b["id"] = new_id(start + i)
        b["time"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + i)) + ".000+00:00"
        b["client"] = f"team-{i % 17}"
        b["action"] = ACTIONS[i % 4]
        b["findings"][0]["rule_id"] = RULES[i % len(RULES)]
        b["findings"][0]["vector"] = "indirect" if i % 3 else "direct"
        for s in b["segments"]:
            if s["trust"] == "untrusted":
                s["provenance"]["source"] = f"https://wiki.example/page/{i % 250}"
        for k in ("seq", "prev_hash", "hash"):
            b.pop(k, None)
        batch.append(b)
        ids.append(b["id"])
        if len(batch) == 500:
            store.append(batch)
            batch = []
    store.append(batch)
    for i, evidence_id in enumerate(ids[::97]):
        store.label(Label(evidence_id, "true_positive" if i % 2 else "needs_rule", "", "bench", "2026-01-01"))
    return ids


def timed(client: httpx.Client, path: str, repeat: int) -> tuple[float, float, int]:
    client.get(path).raise_for_status()  # warm
    walls, cpu0 = [], time.process_time()
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(path)
        walls.append(time.perf_counter() - t0)
        r.raise_for_status()
    return statistics.median(walls) * 1000, (time.process_time() - cpu0) / repeat * 1000, len(r.content)


def run(location: str, n: int, repeat: int) -> dict[str, tuple[float, float, int]]:
    store = open_store(location)
    t0 = time.perf_counter()
    ids = fill(store, n, template())
    print(f"  filled {n} bundles in {time.perf_counter() - t0:.1f} s", flush=True)
    console = start_in_thread(store, TOKEN)
    results = {}
    with httpx.Client(base_url=console.url) as c:
        r = c.post("/login", data={"token": TOKEN})
        c.headers["cookie"] = f"{COOKIE}={r.cookies[COOKIE]}"  # Secure cookie over loopback http
        seq_deep = json.loads(store.get(ids[60]) or b"{}")["seq"]
        pages = {
            "list, first page (50)": "/",
            "list, deep page (cursor near the oldest)": f"/?before={seq_deep}",
            "list, action=block (index)": "/?action=block",
            "list, rule filter (scan)": "/?rule=injection.leak.system_prompt",
            "list, source filter (scan)": "/?source=page/7",
            "list, label filter": "/?label=needs_rule",
            "one bundle": f"/bundles/{ids[n // 2]}",
        }
        for name, path in pages.items():
            results[name] = timed(c, path, repeat)
    console.stop()
    store.close()
    return results


def report(title: str, results: dict[str, tuple[float, float, int]]) -> None:
    print(f"\n{title}")
    print(f"  {'page':44} {'median ms':>10} {'CPU ms/req':>11} {'bytes':>8}")
    for name, (wall, cpu, size) in results.items():
        print(f"  {name:44} {wall:10.1f} {cpu:11.1f} {size:8}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundles", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = run(str(Path(tmp) / "small"), 100, args.repeat)
        big = run(str(Path(tmp) / "big"), args.bundles, args.repeat)
    report("files store, 100 bundles", small)
    report(f"files store, {args.bundles} bundles", big)
    first = "list, first page (50)"
    print(f"  ratio first page {args.bundles} / 100 bundles: wall {big[first][0] / small[first][0]:.2f}x, "
          f"CPU {big[first][1] / small[first][1]:.2f}x")
    try:
        import psycopg

        with psycopg.connect(args.pg, autocommit=True, connect_timeout=3) as admin:
            schema = f"gp_console_bench_{int(time.time())}"
            admin.execute(f"create schema {schema}")
            try:
                pg = run(f"{args.pg}?options=-csearch_path%3D{schema}", args.bundles, args.repeat)
            finally:
                admin.execute(f"drop schema {schema} cascade")
        report(f"PostgreSQL store, {args.bundles} bundles", pg)
    except psycopg.OperationalError as exc:
        print(f"\nPostgreSQL not reachable at {args.pg}: {exc}")


if __name__ == "__main__":
    main()
