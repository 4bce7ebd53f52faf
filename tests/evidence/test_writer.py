"""The writer and recorder: flagged bundles are durable before the call returns, clean samples
never wait, overflow is counted, ids appear only for kept exchanges."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from evidence.conftest import make_bundle

from proxy.evidence.recorder import EvidenceRecorder
from proxy.evidence.store import Store, open_store
from proxy.evidence.writer import EvidenceWriter, Job
from proxy.model import Action, Decision, Exchange
from proxy.providers import openai_chat


def _exchange(flagged: bool) -> Exchange:
    conv = openai_chat.parse({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    ex = Exchange(request_id="r", conversation=conv, received_conversation=conv)
    if flagged:
        ex.decisions.append(Decision("x", Action.TAG))
    return ex


class SlowStore:
    """Blocks appends until released, so the queue can be filled deterministically."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.gate = inner, threading.Event()
        self.location = inner.location

    def append(self, bundles: list[dict[str, Any]]) -> Any:
        self.gate.wait(10)
        return self.inner.append(bundles)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_durable_write_is_indexed_when_it_returns(tmp_path: Path) -> None:
    writer = EvidenceWriter(lambda: open_store(tmp_path), queue_size=4)
    writer.start()
    bundle = make_bundle()
    await writer.durable(Job(bundle["id"], lambda: bundle))
    check = open_store(tmp_path)
    assert check.get(bundle["id"]) is not None and [r.id for r in check.rows()] == [bundle["id"]]
    writer.close()


async def test_overflow_of_clean_samples_is_counted_not_silent(tmp_path: Path) -> None:
    slow = SlowStore(open_store(tmp_path))
    writer = EvidenceWriter(lambda: slow, queue_size=2)  # type: ignore[arg-type, return-value]
    writer.start()
    accepted = [writer.submit(Job(str(i), make_bundle)) for i in range(6)]
    assert accepted.count(False) >= 3 and writer.stats.dropped == accepted.count(False)
    slow.gate.set()
    writer.close()
    assert writer.stats.written == accepted.count(True)


async def test_recorder_keeps_flagged_always_and_clean_only_when_sampled(tmp_path: Path) -> None:
    rolls = iter([0.5, 0.001])
    recorder = EvidenceRecorder(lambda: open_store(tmp_path), sample_rate=0.01, rng=lambda: next(rolls))
    await recorder.start()
    flagged, clean_out, clean_in = _exchange(True), _exchange(False), _exchange(False)
    recorder.begin(flagged)
    recorder.begin(clean_out)  # rolls 0.5: sampled out
    recorder.begin(clean_in)  # rolls 0.001: sampled in
    assert flagged.evidence_id and clean_out.evidence_id is None and clean_in.evidence_id
    for ex in (flagged, clean_out, clean_in):
        await recorder(ex)
    await recorder.close()
    store = open_store(tmp_path)
    kept = {r.id: r.kept for r in store.rows()}
    assert kept == {flagged.evidence_id: "flagged", clean_in.evidence_id: "sampled"}


async def test_an_exchange_first_flagged_at_output_still_gets_a_bundle(tmp_path: Path) -> None:
    recorder = EvidenceRecorder(lambda: open_store(tmp_path), sample_rate=0.0)
    await recorder.start()
    ex = _exchange(False)
    recorder.begin(ex)
    assert ex.evidence_id is None
    ex.decisions.append(Decision("output_scan", Action.TAG))
    await recorder(ex)
    await recorder.close()
    assert ex.evidence_id is not None and open_store(tmp_path).get(ex.evidence_id) is not None


async def test_the_writer_applies_retention_and_the_chain_still_verifies(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from proxy.evidence.chain import verify
    from proxy.evidence.writer import Retention

    old = (datetime.now(UTC) - timedelta(days=30)).isoformat(timespec="milliseconds")
    seed = open_store(tmp_path)
    seed.append([make_bundle(time=old) for _ in range(3)])
    seed.close()
    writer = EvidenceWriter(lambda: open_store(tmp_path), queue_size=4,
                            retention=Retention(max_age_s=7 * 86400, every_s=0.0))
    writer.start()
    bundle = make_bundle()
    await writer.durable(Job(bundle["id"], lambda: bundle))
    writer.close()
    store = open_store(tmp_path)
    assert [r.id for r in store.rows()] == [bundle["id"]] and writer.stats.pruned == 3
    assert list(verify(store.links(), store.anchor())) == []


class BrokenStore(SlowStore):
    def append(self, bundles: list[dict[str, Any]]) -> Any:
        raise OSError("disk full")


async def test_a_failed_durable_write_is_counted_and_no_id_is_handed_out(tmp_path: Path) -> None:
    broken = BrokenStore(open_store(tmp_path))
    recorder = EvidenceRecorder(lambda: broken)  # type: ignore[arg-type, return-value]
    await recorder.start()
    ex = _exchange(True)
    recorder.begin(ex)
    await recorder(ex)
    await recorder.close()
    assert ex.evidence_id is None
    assert recorder.writer.stats.errors == 1 and "disk full" in recorder.writer.stats.last_error
    assert "disk full" in recorder.ready()[1]
