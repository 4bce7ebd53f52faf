"""Which output stages judge a stream, and how: worked out from the one ordered stage list.

Every enabled OUTPUT stage runs on a stream, in its configured order, exactly once:
- a stage with a stream inspector reads the text as it flows (the hold-back gate);
- every other stage judges the model's turn when it ends, before the turn's last event leaves.
  What it may still change depends on what was held for it (`OutputReach`): the whole text
  (held up to `stream.max_hold_chars`, then the stream stops), the tool calls (held, text flows),
  or nothing (it can only tag for this exchange, so nothing is held).
Text rewriters (PII restoration) rewrite what leaves, at text level, through the codec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from proxy.guards.base import OutputReach, ReachDeclaring, RewritingGuard, StreamingGuard, TextRewriter
from proxy.model import Exchange, Phase
from proxy.pipeline import Pipeline, Stage


@dataclass(frozen=True, slots=True)
class StageKinds:
    """The pipeline's output stages sorted once, at start-up (protocol checks are slow per request)."""

    incremental: tuple[tuple[Stage, StreamingGuard], ...]
    judges: tuple[tuple[Stage, ReachDeclaring | None], ...]  # in configured order
    rewriting: tuple[RewritingGuard, ...]

    @staticmethod
    def of(pipeline: Pipeline) -> StageKinds:
        incremental, judges, rewriting = [], [], []
        for stage in pipeline.stages:
            guard = stage.guard
            if not stage.settings.enabled:
                continue
            if isinstance(guard, RewritingGuard):
                rewriting.append(guard)
            if Phase.OUTPUT not in guard.phases:
                continue
            if isinstance(guard, StreamingGuard):
                incremental.append((stage, guard))
            else:
                judges.append((stage, guard if isinstance(guard, ReachDeclaring) else None))
        return StageKinds(tuple(incremental), tuple(judges), tuple(rewriting))


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """One stream's plan: who inspects, who judges at the turn's end, what is held for them."""

    incremental: tuple[tuple[Stage, StreamingGuard], ...]
    judges: tuple[Stage, ...]
    hold_text_for: tuple[str, ...]  # judges that need the whole text held
    text_judges: tuple[str, ...]  # judges that read the text (all but tool-call-only ones)
    rewriters: tuple[Callable[[], TextRewriter], ...]  # one rewriter of each per channel

    @property
    def holds_tools(self) -> bool:
        # Calls wait for the judges, and for rewriters: their arguments leave rewritten, whole.
        return bool(self.judges or self.rewriters)


def plan_stream(kinds: StageKinds, exchange: Exchange) -> StreamPlan:
    reach = [(stage.name, declaring.output_reach(exchange) if declaring is not None else OutputReach.WHOLE)
             for stage, declaring in kinds.judges]
    hold_text = tuple(name for name, r in reach if r is OutputReach.WHOLE)
    text_judges = tuple(name for name, r in reach if r is not OutputReach.TOOL_CALLS)
    rewriters = tuple(r for g in kinds.rewriting if (r := g.stream_rewriter(exchange)) is not None)
    return StreamPlan(kinds.incremental, tuple(s for s, _ in kinds.judges), hold_text, text_judges, rewriters)
