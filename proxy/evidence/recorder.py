"""The relay observer that decides which exchanges are kept and hands them to the writer.

`begin(exchange)` runs after the input stages and before any response header leaves: a flagged
exchange (a finding or a decision) or a sampled clean one gets its evidence id there, so even a
stream's headers carry `x-guardproxy-evidence-id`. At the end, a flagged exchange is written
durably before its response completes; a sampled one is queued and costs the request nothing.
An exchange first flagged by an output stage is kept too (a plain response still gets the header;
a stream's headers have already left).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from proxy.evidence.bundle import Kept, build, new_id
from proxy.evidence.checkpoint import Checkpointer, signing_key
from proxy.evidence.redact import BundleRedactor, CleanTexts
from proxy.evidence.seal import Sealer
from proxy.evidence.store import Store, open_store
from proxy.evidence.writer import EvidenceWriter, Job, Retention
from proxy.model import Exchange
from proxy.pii.analyzer import PiiAnalyzer, shared_analyzer
from proxy.pipeline import Pipeline
from proxy.settings import Settings

log = logging.getLogger("guardproxy.evidence")


def flagged(exchange: Exchange) -> bool:
    return bool(exchange.findings or exchange.decisions)


class EvidenceRecorder:
    name = "evidence"

    def __init__(
        self,
        open_store: Callable[[], Store],
        *,
        sample_rate: float = 0.0,
        queue_size: int = 10_000,
        analyzer: PiiAnalyzer | None = None,
        sealer: Sealer | None = None,
        pipeline: Pipeline | None = None,
        retention: Retention | None = None,
        rng: Callable[[], float] = random.random,
        checkpointer: Checkpointer | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.analyzer = analyzer
        self.sealer = sealer
        self.pipeline = pipeline
        self.rng = rng
        self.writer = EvidenceWriter(open_store, queue_size, retention)
        self.checkpointer = checkpointer
        self._open_store = open_store
        self._checkpoint_store: Store | None = None
        self._checkpoints: asyncio.Task[None] | None = None
        self._builder = ThreadPoolExecutor(1, thread_name_prefix="guardproxy-evidence-build")
        self._warming: asyncio.Future[None] | None = None
        self.clean = CleanTexts()  # texts earlier bundles found nothing to redact in

    @property
    def warming(self) -> asyncio.Future[None] | None:
        """The PII analyzer's background warm-up, once `start` has begun it (None without one)."""
        return self._warming

    def begin(self, exchange: Exchange) -> None:
        if exchange.evidence_id is None and (flagged(exchange) or self.rng() < self.sample_rate):
            exchange.evidence_id = new_id()

    async def __call__(self, exchange: Exchange) -> None:
        is_flagged = flagged(exchange)
        if exchange.evidence_id is None:
            if not is_flagged:
                return  # the common case: a clean exchange sampled out costs one comparison
            exchange.evidence_id = new_id()
        kept = Kept("flagged" if is_flagged else "sampled", self.sample_rate)
        versions = self._versions(exchange)  # now, on the loop: a reload may land before the write
        evidence_id = exchange.evidence_id
        job = Job(evidence_id, lambda: self._build(exchange, evidence_id, kept, versions))
        if not is_flagged:
            if not self.writer.submit(job):
                exchange.evidence_id = None  # no bundle will exist: do not hand out its id
            return
        try:
            # One builder thread redacts while the writer thread fsyncs (which releases the GIL):
            # building and writing overlap instead of taking turns.
            bundle = await asyncio.get_running_loop().run_in_executor(self._builder, job.build)
            await self.writer.durable(Job(evidence_id, lambda: bundle))
        except Exception:
            log.exception("evidence for %s was not written", exchange.request_id)
            exchange.evidence_id = None

    def _build(self, exchange: Exchange, evidence_id: str, kept: Kept, versions: dict[str, Any]) -> dict[str, Any]:
        redactor = BundleRedactor(self.analyzer, protected_texts(exchange), self.clean)
        sealed = self.sealer.seal(raw_copy(exchange)) if self.sealer is not None else None
        return build(exchange, evidence_id, kept, redactor, versions, sealed)

    def _versions(self, exchange: Exchange) -> dict[str, Any]:
        rulesets = sorted({f.ruleset for f in exchange.findings if f.ruleset})
        live = _live_ruleset(self.pipeline)
        policy = getattr(getattr(exchange, "policy", None), "digest", None)
        return {"ruleset": rulesets[0] if len(rulesets) == 1 else (rulesets or live),
                "policy": policy if isinstance(policy, str) else None}

    async def start(self) -> None:
        await asyncio.to_thread(self.writer.start)
        if self.analyzer is not None:
            # Warmed in the background: importing Presidio costs about a second (several on a busy
            # machine), and readiness must not wait for it. A bundle built before it is warm waits
            # on the analyzer's own lock, so nothing is written unredacted.
            self._warming = asyncio.get_running_loop().run_in_executor(self._builder, self.analyzer.warm)
            self._warming.add_done_callback(_log_warm_failure)
        if self.checkpointer is not None:
            self._checkpoints = asyncio.create_task(self._checkpoint_every(self.checkpointer.interval_s))

    async def close(self) -> None:
        await asyncio.to_thread(self.writer.close)
        self._builder.shutdown(wait=False)
        if self._checkpoints is not None:
            self._checkpoints.cancel()
            await asyncio.to_thread(self._checkpoint)  # the head as the process leaves it
            if self._checkpoint_store is not None:
                self._checkpoint_store.close()

    async def _checkpoint_every(self, interval_s: float) -> None:
        while True:  # one at start-up too: a reviewer has an anchor from the first minute
            await asyncio.to_thread(self._checkpoint)
            await asyncio.sleep(interval_s)

    def _checkpoint(self) -> None:
        if self.checkpointer is None:
            return
        try:
            if self._checkpoint_store is None:
                self._checkpoint_store = self._open_store()  # its own connection: never the writer's
            self.checkpointer.take(self._checkpoint_store)
        except Exception:
            # A missing checkpoint is visible (the previous one stays the newest); it never stops traffic.
            log.exception("evidence checkpoint failed")

    def ready(self) -> tuple[bool, str]:
        s = self.writer.stats
        detail = (f"queue {self.writer.depth()}/{self.writer.queue_size}, written {s.written}, "
                  f"dropped {s.dropped}, errors {s.errors}")
        if s.last_error:
            detail += f"; last error: {s.last_error}"
        # Not ready while writes fail: a load balancer drains this replica until the store is back.
        return not s.failing, detail


def _log_warm_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.error("PII analyzer failed to warm up: %s (bundles will retry it)", exc)


def _live_ruleset(pipeline: Pipeline | None) -> str | None:
    """The rule set in force, from whichever stage holds a live rule store (duck-typed)."""
    for stage in pipeline.stages if pipeline else ():
        store = getattr(stage.guard, "store", None)
        if store is None or not getattr(store, "loaded", False):
            continue
        digest = getattr(getattr(store.live, "ruleset", None), "digest", None)
        if isinstance(digest, str):
            return digest
    return None


# Findings whose text is not a pinpointed payload: PII hits, and the learned layer's scores (a
# score covers a whole window of text; protecting it would keep every address and number in it).
_UNPROTECTED_DETECTORS = frozenset({"pii", "model"})


def protected_texts(exchange: Exchange) -> list[str]:
    """The text each rule finding matched, and the sentence around it: the payload stays readable."""
    out = []
    segments = {s.index: s for s in (exchange.received_conversation or exchange.conversation).segments}
    for f in exchange.findings:
        seg = segments.get(f.segment_index)
        if f.detector not in _UNPROTECTED_DETECTORS and seg is not None:
            out += [seg.text[f.span[0] : f.span[1]], f.excerpt]  # the match and its sentence
    return out


def raw_copy(exchange: Exchange) -> dict[str, Any]:
    """What the sealed copy holds: the exchange before redaction."""
    received = exchange.received_conversation or exchange.conversation
    out = exchange.attributes.get("upstream_output") or exchange.output
    return {
        "request": received.raw,
        "segments": [s.text for s in exchange.conversation.segments],
        "output": None if out is None else {
            "text": out.text,
            "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in out.tool_calls],
        },
        "sealed_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }


def evidence_recorder(settings: Settings, pipeline: Pipeline | None = None) -> EvidenceRecorder | None:
    """The recorder the settings ask for, or None when evidence is off."""
    ev = settings.evidence
    if not ev.enabled:
        return None
    dsn = ev.dsn.get_secret_value() if ev.dsn is not None else None
    if ev.backend == "postgres" and not dsn:
        from proxy.errors import ConfigError

        raise ConfigError("evidence.backend is postgres but evidence.dsn is not set")
    location = settings.evidence_dir
    retention = Retention(
        max_age_s=ev.retention_days * 86400 if ev.retention_days else None,
        max_bytes=int(ev.retention_max_mb * 1024 * 1024) if ev.retention_max_mb else None,
    )
    return EvidenceRecorder(
        lambda: open_store(location, dsn if ev.backend == "postgres" else None),
        sample_rate=ev.sample_rate,
        queue_size=ev.queue_size,
        analyzer=shared_analyzer(tuple(ev.pii_entities), ev.pii_threshold) if ev.redact_pii else None,
        sealer=Sealer(ev.seal_public_key) if ev.seal_public_key else None,
        pipeline=pipeline,
        retention=retention,
        checkpointer=_checkpointer(settings),
    )


def _checkpointer(settings: Settings) -> Checkpointer | None:
    ev = settings.evidence
    if ev.checkpoint_key is None:
        return None
    out = ev.checkpoint_file
    if out is not None and out.resolve().is_relative_to(settings.evidence_dir.resolve()):
        from proxy.errors import ConfigError

        raise ConfigError(f"evidence.checkpoint_file {out} lies inside the evidence store {settings.evidence_dir}: "
                          "a checkpoint must live apart from what it anchors")
    return Checkpointer(signing_key(ev.checkpoint_key), out_file=out,
                        dsn=ev.checkpoint_dsn.get_secret_value() if ev.checkpoint_dsn else None,
                        interval_s=ev.checkpoint_interval_s)
