"""SimConfig validation and the live state: fault countdown and stats."""

from __future__ import annotations

import re
from typing import Any

import pytest

from proxy.simulator import SimConfig
from proxy.simulator.config import SimState


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fault": "explode"}, "fault must be null or one of"),
        ({"fault": 500}, "fault must be null or one of"),
        ({"ttft_ms": -1}, "ttft_ms must be a finite number >= 0"),
        ({"token_ms": float("inf")}, "token_ms must be a finite number >= 0"),
        ({"stall_s": "1"}, "stall_s must be a number"),
        ({"ttft_ms": True}, "ttft_ms must be a number"),
        ({"fault_count": 1.5}, "fault_count must be null or an integer >= 0"),
        ({"fault_count": -1}, "fault_count must be null or an integer >= 0"),
        ({"require_key": 7}, "require_key must be null or a string"),
        ({"latency": 3}, "unknown config field(s): latency"),
    ],
)
def test_bad_changes_are_refused_with_a_message_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        SimConfig().updated(changes)


def test_construction_validates_too() -> None:
    with pytest.raises(ValueError, match="fault must be"):
        SimConfig(fault="nope")


def test_valid_changes_are_applied_to_a_copy() -> None:
    original = SimConfig()
    changed = original.updated({"fault": "429", "fault_count": 2, "ttft_ms": 5})
    assert (changed.fault, changed.fault_count, changed.ttft_ms) == ("429", 2, 5)
    assert original == SimConfig()


def test_a_failed_configure_changes_nothing() -> None:
    state = SimState(SimConfig())
    with pytest.raises(ValueError):
        state.configure({"ttft_ms": 5, "fault": "bogus"})
    assert state.config() == SimConfig()


def test_fault_count_limits_the_fault_to_the_next_n_requests() -> None:
    state = SimState(SimConfig(fault="500", fault_count=2))
    assert [state.take_fault() for _ in range(4)] == ["500", "500", None, None]
    assert state.stats()["faults_applied"] == 2


def test_without_fault_count_every_request_is_hit() -> None:
    state = SimState(SimConfig(fault="stall"))
    assert [state.take_fault() for _ in range(3)] == ["stall"] * 3


def test_changing_the_fault_rearms_the_countdown() -> None:
    state = SimState(SimConfig(fault="500", fault_count=1))
    state.take_fault()
    assert state.take_fault() is None
    state.configure({"fault": "429"})
    assert [state.take_fault(), state.take_fault()] == ["429", None]
    state.configure({"ttft_ms": 1})  # unrelated changes leave the countdown alone
    assert state.take_fault() is None


def test_no_fault_is_never_counted() -> None:
    state = SimState(SimConfig())
    assert state.take_fault() is None
    assert state.stats()["faults_applied"] == 0


def test_stats_record_requests_and_hand_out_copies() -> None:
    state = SimState(SimConfig())
    assert state.stats() == {"requests": 0, "faults_applied": 0, "last_request": None}
    state.record({"messages": []}, {"authorization": "Bearer x"})
    stats = state.stats()
    assert stats["requests"] == 1
    assert stats["last_request"] == {
        "body": {"messages": []},
        "headers": {"authorization": "Bearer x"},
    }
    stats["last_request"]["body"]["messages"].append("mutated")
    assert state.stats()["last_request"]["body"] == {"messages": []}


def test_the_state_keeps_its_own_copy_of_the_config() -> None:
    config = SimConfig()
    state = SimState(config)
    state.configure({"ttft_ms": 9})
    assert config.ttft_ms == 0.0
    assert state.config().ttft_ms == 9
