"""The one data model every part of guardproxy speaks.

A provider adapter turns wire JSON into a `Conversation` of trust-labelled `Segment`s; guards read
an `Exchange` (one request's life) and answer with a `Verdict`; only the pipeline writes to the
Exchange. Everything here is plain data: no I/O, no third-party types.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the policy is config; the model only carries a reference to it
    from proxy.policy.spec import ClientPolicy, Policy


class Trust(StrEnum):
    """Who authored a piece of text the model will read."""

    TRUSTED = "trusted"  # operator instructions: system / developer messages
    USER = "user"  # the end user's own words (and client-supplied history)
    UNTRUSTED = "untrusted"  # retrieved: tool results, documents, marked spans


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    def escalate(self) -> Severity:
        """One class up (an indirect finding with side effects reachable is escalated)."""
        order = list(Severity)
        return order[min(self.rank + 1, len(order) - 1)]


_SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


class Vector(StrEnum):
    DIRECT = "direct"  # in a `user` segment
    INDIRECT = "indirect"  # in an `untrusted` segment
    OTHER = "other"  # in trusted text or model output


class Phase(StrEnum):
    INPUT = "input"
    OUTPUT = "output"


class Action(StrEnum):
    """What the proxy did about an exchange, weakest first."""

    ALLOW = "allow"
    TAG = "tag"
    SEGREGATE = "segregate"
    NEUTRALISE = "neutralise"  # retrieved content carrying an injection withheld, side effects dropped
    WITHHOLD = "withhold"  # the response went out, minus tool calls that were out of scope
    BLOCK = "block"


class VerdictKind(StrEnum):
    ALLOW = "allow"
    TRANSFORM = "transform"
    BLOCK = "block"


class StageStatus(StrEnum):
    """How a stage ran, apart from what it decided: 'not scanned' never reads as 'passed'."""

    OK = "ok"
    SKIPPED = "skipped"
    ERROR = "error"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a segment's text came from."""

    kind: str  # system | developer | user | assistant | tool_result | document | marked
    source: str | None = None  # URL, file, tool name, document title
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class Location:
    """Where a segment sits in the provider JSON, so a rewrite can be put back.

    `path` addresses a string in the request body (e.g. ("messages", 3, "content")); several
    segments share a path when `<untrusted>` markup splits one string, `part` orders them.
    """

    path: tuple[str | int, ...]
    part: int = 0
    # The text is a key of the object at `path[:-1]` (a schema property's name), not a string value:
    # it is scanned like any text, but never written back (renaming a key would change the schema).
    scan_only: bool = False


@dataclass(frozen=True, slots=True)
class Segment:
    index: int
    role: str
    text: str
    trust: Trust
    provenance: Provenance
    location: Location | None  # None for text a guard added (e.g. a segregation notice)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)  # the entry as the client sent it
    kind: str = "function"  # "function" | "legacy_function" (OpenAI `functions`) | a server tool's type


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text as the model produced it
    index: int = 0
    choice: int = 0  # which of the response's choices made it (OpenAI n > 1)
    kind: str = "function"  # "function" | "function_call" (legacy) | "server_tool_use" | "mcp_tool_use"


@dataclass(frozen=True, slots=True)
class Opaque:
    """Content the model reads that is not text (an image, a PDF, a file): no text guard can scan
    it, so it is recorded, and when untrusted it taints the conversation like untrusted text."""

    kind: str  # image | document | file | audio | server_tool_result | ...
    trust: Trust
    provenance: Provenance
    path: tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Uninspected:
    """A part of the request that was passed on without being parsed (operator setting
    `unknown_shapes: pass_uninspected`), or an unknown parameter that was recorded."""

    path: str  # e.g. "messages.3.content.0" or "logit_bias"
    why: str
    chars: int = 0  # size of the JSON passed unread


@dataclass(frozen=True, slots=True)
class Conversation:
    """A request, normalised: trust-labelled segments, tools offered, model, stream flag."""

    api: str  # the wire API it came in: "openai.chat" | "anthropic.messages" (proxy.providers.APIS)
    vendor: str  # who serves that API: "openai" | "anthropic" (gen_ai.provider.name)
    model: str
    stream: bool
    segments: tuple[Segment, ...]
    tools: tuple[ToolSpec, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)  # the body as received (never mutated)
    opaque: tuple[Opaque, ...] = ()  # non-text content the model reads
    uninspected: tuple[Uninspected, ...] = ()  # passed on unread, or unknown parameters
    calls: tuple[ToolCall, ...] = ()  # tool calls in the history (their results' ids point at them)

    def untrusted(self) -> tuple[Segment, ...]:
        return tuple(s for s in self.segments if s.trust is Trust.UNTRUSTED)

    def tainted(self) -> bool:
        """Does the model read anything untrusted (text, images, files) or unread?"""
        return (any(s.trust is Trust.UNTRUSTED for s in self.segments)
                or any(o.trust is Trust.UNTRUSTED for o in self.opaque)
                or any(u.chars for u in self.uninspected))

    def with_text(self, index: int, text: str) -> Conversation:
        """A copy with one segment's text replaced (guards transform through copies)."""
        segs = list(self.segments)
        segs[index] = dataclasses.replace(segs[index], text=text)
        return self._with(segs=tuple(segs))

    def _with(self, *, segs: tuple[Segment, ...] | None = None,
              tools: tuple[ToolSpec, ...] | None = None) -> Conversation:
        """A copy with new segments or tools, built field by field: `dataclasses.replace` costs
        several times more, and every guard that rewrites a request makes one per request
        (tests/test_model.py checks that no field is left out)."""
        return Conversation(self.api, self.vendor, self.model, self.stream,
                            self.segments if segs is None else segs, self.tools if tools is None else tools,
                            self.raw, self.opaque, self.uninspected, self.calls)

    def with_segments(self, segments: list[Segment]) -> Conversation:
        """A copy with a new segment list, re-indexed. A segment without a location is added
        text: adapters insert it as a new message after the message of the segment before it."""
        # Built directly: dataclasses.replace costs several times more, and this runs per request.
        segs = tuple(
            s if s.index == i else Segment(i, s.role, s.text, s.trust, s.provenance, s.location)
            for i, s in enumerate(segments)
        )
        return self._with(segs=segs)

    def with_tools(self, tools: tuple[ToolSpec, ...]) -> Conversation:
        return self._with(tools=tools)

    def char_count(self) -> int:
        return sum(len(s.text) for s in self.segments)


@dataclass(frozen=True, slots=True)
class Output:
    """The model's answer, normalised (accumulated over a stream)."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    response_id: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    withheld: tuple[ToolCall, ...] = ()  # calls the model made that never reached the client
    # OpenAI n > 1: the other choices' text and finish reason (their calls are in `tool_calls`).
    alternatives: tuple[Choice, ...] = ()
    # Parts of the answer the client gets that no output stage reads (reasoning summaries, citations,
    # a hosted tool's code and results...): the coverage ledger lists each as not inspected.
    uninspected: tuple[Uninspected, ...] = ()


@dataclass(frozen=True, slots=True)
class Choice:
    """One more answer of a response that asked for several (OpenAI `n`): index >= 1."""

    index: int
    text: str = ""
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """One detector hit, explainable: which rule, where, how the text was decoded."""

    rule_id: str
    category: str
    severity: Severity
    vector: Vector
    segment_index: int
    span: tuple[int, int]  # character span in the segment's original text
    excerpt: str
    decoding: tuple[str, ...] = ("plain",)  # e.g. ("base64", "nfkc")
    detector: str = "rules"
    ruleset: str | None = None  # content hash of the rule set in force
    provenance: Provenance | None = None
    phase: Phase = Phase.INPUT
    mode: str = "enforce"  # "shadow" findings are recorded but change nothing on the wire


@dataclass(frozen=True, slots=True)
class Decision:
    """What the proxy did, and why."""

    stage: str
    action: Action
    severity: Severity | None = None
    reasons: tuple[str, ...] = ()
    tools_removed: tuple[str, ...] = ()
    calls_blocked: tuple[str, ...] = ()
    blast_radius: dict[str, Any] | None = None
    approvals: tuple[str, ...] = ()  # approval ids of withheld calls the application may approve


@dataclass(frozen=True, slots=True)
class Verdict:
    """A guard's answer. A transform carries the replacement conversation or output."""

    kind: VerdictKind = VerdictKind.ALLOW
    findings: tuple[Finding, ...] = ()
    decision: Decision | None = None
    conversation: Conversation | None = None
    output: Output | None = None
    # For a block: the HTTP status and OpenAI error type/code the client sees.
    status_code: int = 400
    error_type: str = "guardrail_violation"
    error_code: str | None = None
    message: str = ""
    retry_after: int | None = None  # seconds, for blocks the client may retry (429)

    @staticmethod
    def allow(*findings: Finding) -> Verdict:
        return Verdict(VerdictKind.ALLOW, findings=findings)


# The answer of a guard that found nothing and changes nothing. Verdicts are frozen, so one instance
# serves every such answer: a frozen dataclass of ten fields costs microseconds to build, and most
# stages give this answer on most requests.
CLEAN = Verdict()


@dataclass(slots=True)
class StageRecord:
    """One stage's run over one phase of one exchange."""

    name: str
    phase: Phase
    status: StageStatus
    verdict: VerdictKind | None
    duration_ms: float
    detail: str = ""


@dataclass(slots=True)
class Timings:
    """Milliseconds, split the way the latency runbook reads them."""

    received: float = 0.0  # monotonic seconds at arrival
    guard_in_ms: float = 0.0
    queue_ms: float = 0.0
    upstream_ms: float = 0.0
    ttft_ms: float | None = None
    guard_out_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(slots=True)
class StreamCoverage:
    """What the stream path tells the coverage ledger (proxy.coverage): items a stage judged
    before they left, and items that left unjudged, with why. The stream machinery writes it."""

    inspected_by: dict[str, list[str]] = field(default_factory=dict)
    gaps: dict[str, tuple[str, int]] = field(default_factory=dict)

    def inspected(self, item: str, stage: str) -> None:
        stages = self.inspected_by.setdefault(item, [])
        if stage not in stages:
            stages.append(stage)

    def not_inspected(self, item: str, why: str, chars: int = 0) -> None:
        self.gaps[item] = (why, chars)


@dataclass(slots=True)
class Exchange:
    """One request's life. Stages read it; only the pipeline and the app write it."""

    request_id: str
    conversation: Conversation
    client: str = "default"
    policy: Policy | None = None  # the policy in force when the request arrived
    client_policy: ClientPolicy | None = None  # the caller's part of it
    received_conversation: Conversation | None = None
    findings: list[Finding] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    stages: list[StageRecord] = field(default_factory=list)
    output: Output | None = None
    upstream_status: int | None = None
    timings: Timings = field(default_factory=Timings)
    trace_id: str | None = None
    evidence_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)  # per-request facts for later stages
    stream_coverage: StreamCoverage = field(default_factory=StreamCoverage)

    def action(self) -> Action:
        """The strongest action any decision took."""
        order = list(Action)
        return max((d.action for d in self.decisions), key=order.index, default=Action.ALLOW)
