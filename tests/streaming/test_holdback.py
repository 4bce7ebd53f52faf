"""The hold-back gate, sans I/O: window, hold, block, redaction, boundaries, failure modes."""

from __future__ import annotations

from dataclasses import dataclass, field

from proxy.guards.base import Redaction, StreamAction
from proxy.model import Action, Decision, StageStatus, Verdict, VerdictKind
from proxy.streaming.holdback import Inspecting, TextGate


@dataclass
class Scripted:
    """Blocks on `bad`, holds while the text ends with a prefix of `bad`, redacts `secret`."""

    bad: str = "BOOM"
    secret: str = "s3cr3t"
    text: str = ""
    redactions: list[Redaction] = field(default_factory=list)
    fed: list[str] = field(default_factory=list)
    ended: int = 0

    def feed(self, delta: str) -> StreamAction:
        self.fed.append(delta)
        start = max(0, len(self.text) - len(self.secret))
        self.text += delta
        at = self.text.find(self.secret, start)
        if at >= 0:
            self.redactions.append((at, at + len(self.secret), "[x]"))
        if self.bad in self.text:
            return StreamAction.BLOCK
        if any(self.text.endswith(self.bad[:k]) for k in range(1, len(self.bad))):
            return StreamAction.HOLD
        return StreamAction.RELEASE

    def close(self) -> Verdict:
        if self.bad in self.text:
            return Verdict(VerdictKind.BLOCK, decision=Decision("s", Action.BLOCK, reasons=("saw BOOM",)))
        return Verdict()

    def take_redactions(self) -> list[Redaction]:
        out, self.redactions = self.redactions, []
        return out

    def end_of_text(self) -> StreamAction:
        self.ended += 1
        return StreamAction.RELEASE


class Exploding:
    def feed(self, delta: str) -> StreamAction:
        raise RuntimeError("inspector bug")

    def close(self) -> Verdict:
        return Verdict()


def gate(*inspectors: object, window: int = 4, max_hold: int = 64, fail_open: bool = False) -> TextGate:
    return TextGate([Inspecting(f"g{i}", x, "open" if fail_open else "closed") for i, x in enumerate(inspectors)],  # type: ignore[arg-type]
                    window=window, max_hold=max_hold)


def feed_all(g: TextGate, text: str, size: int = 1) -> str:
    out = [g.feed(text[i : i + size]) for i in range(0, len(text), size)]
    return "".join(out)


def test_window_keeps_the_tail_until_a_boundary() -> None:
    g = gate(Scripted(), window=4)
    assert g.feed("hello ") == "he"
    assert g.feed("world") == "llo w"
    assert g.flush() == "orld"
    assert "".join(g.sent) == "hello world"


def test_zero_window_releases_at_once() -> None:
    g = gate(Scripted(), window=0)
    assert g.feed("abc") == "abc" and g.feed("d") == "d"


def test_payload_split_into_single_characters_is_blocked_before_it_leaves() -> None:
    g = gate(Scripted(), window=2)
    released = feed_all(g, "fine text then BOOM and more")
    assert "B" not in released and g.stopped is not None
    assert g.stopped.reason == "saw BOOM" and g.stopped.stage == "g0"
    assert g.feed("x") == "" and g.flush() == ""  # a stopped gate releases nothing more


def test_hold_keeps_a_possible_prefix_back_beyond_the_window() -> None:
    g = gate(Scripted(), window=0)
    assert g.feed("ab BO") == ""  # "BO" could become BOOM: nothing leaves
    assert g.feed("X") == "ab BOX"  # it did not


def test_redaction_applies_to_held_text_whatever_the_chunking() -> None:
    for size in (1, 2, 5, 100):
        g = gate(Scripted(), window=8)
        out = feed_all(g, "my s3cr3t is safe", size) + g.flush()
        assert out == "my [x] is safe", size


def test_redaction_is_never_cut_in_two() -> None:
    g = gate(Scripted(), window=1)
    assert g.feed("xx s3cr3t") == "xx [x]"  # the release point moved past the whole span


def test_redaction_of_text_that_already_left_covers_the_held_part_only() -> None:
    g = gate(Scripted(secret="abcdefgh"), window=2)
    g.feed("abcdef")  # "abcd" left: the window was too small for this secret
    assert g.feed("gh!") + g.flush() == "[x]!"


def test_exceeding_max_hold_fails_closed() -> None:
    g = gate(Scripted(bad="B" + "x" * 100), window=0, max_hold=10)
    g.feed("B" + "x" * 20)
    assert g.stopped is not None and g.stopped.stage == "stream" and "10 characters" in g.stopped.reason


def test_failing_inspector_fails_closed_by_default() -> None:
    g = gate(Exploding(), window=0)
    assert g.feed("hi") == "" and g.stopped is not None and "inspector bug" in g.stopped.reason
    entry = g.close()[0]
    assert entry.status is StageStatus.ERROR


def test_failing_inspector_in_open_mode_is_dropped_and_recorded() -> None:
    g = gate(Exploding(), Scripted(), window=0, fail_open=True)
    assert g.feed("hi") == "hi" and g.stopped is None
    entries = g.close()
    assert entries[0].status is StageStatus.ERROR and entries[1].verdict == Verdict()


def test_boundary_lets_inspectors_settle_then_releases() -> None:
    inspector = Scripted()
    g = gate(inspector, window=10)
    assert g.feed("short") == ""
    assert g.flush() == "short" and inspector.ended == 1


def test_every_inspector_sees_every_delta() -> None:
    a, b = Scripted(), Scripted()
    g = gate(a, b, window=0)
    feed_all(g, "abc", 1)
    assert a.fed == b.fed == ["a", "b", "c"]
