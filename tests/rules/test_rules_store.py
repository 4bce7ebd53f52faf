"""The live rule set: content hash, change records, last-good on error, hot reload from disk."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.errors import ConfigError
from proxy.rules.store import ChangeRecord, RuleStore
from tests.rules.conftest import RULE_FILE, rule_yaml

GOOD = RULE_FILE.format(rules=rule_yaml())
SECOND = RULE_FILE.format(rules=rule_yaml("injection.test.second", pattern="'\\bmango mode\\b'"))
BROKEN = RULE_FILE.format(rules=rule_yaml(severity="urgent"))


def test_first_load_records_every_rule_as_added(rules_dir: Callable[..., Path]) -> None:
    store = RuleStore(rules_dir(a__yaml=GOOD))
    record = store.load()
    assert record is not None
    assert record.previous is None and record.added == ("injection.test.sample",)
    assert record.digest == store.live.ruleset.digest and record.files == ("a.yaml",)


def test_start_up_with_a_broken_file_fails_loudly(rules_dir: Callable[..., Path]) -> None:
    store = RuleStore(rules_dir(a__yaml=BROKEN))
    with pytest.raises(ConfigError, match="severity"):
        store.load()
    assert not store.loaded


def test_a_broken_edit_keeps_the_last_good_set_and_a_fix_goes_live(
    rules_dir: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    directory = rules_dir(a__yaml=GOOD)
    store = RuleStore(directory)
    store.load()
    good = store.live.ruleset.digest
    (directory / "a.yaml").write_text(BROKEN, encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="guardproxy.rules"):
        assert store.reload() is None
    assert store.live.ruleset.digest == good
    assert store.last_error is not None and "severity" in store.last_error
    assert "keeping " + good in caplog.text
    fixed = GOOD.replace("A test rule.", "A test rule, reworded.")
    (directory / "a.yaml").write_text(fixed, encoding="utf-8")
    record = store.reload()
    assert record is not None and record.previous == good and record.digest != good
    assert record.changed == ("injection.test.sample",) and not record.added and not record.removed
    assert store.last_error is None


def test_change_records_go_to_the_log_and_to_hooks(
    rules_dir: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    directory = rules_dir(a__yaml=GOOD)
    store = RuleStore(directory)
    seen: list[ChangeRecord] = []
    store.hooks.append(seen.append)
    store.load()
    (directory / "b.yaml").write_text(SECOND, encoding="utf-8")
    (directory / "a.yaml").unlink()
    with caplog.at_level(logging.INFO, logger="guardproxy.rules"):
        store.reload()
    assert [r.added for r in seen] == [("injection.test.sample",), ("injection.test.second",)]
    assert seen[1].removed == ("injection.test.sample",) and seen[1].files == ("b.yaml",)
    assert "rule set live" in caplog.text and seen[1].digest in caplog.text


def test_an_unchanged_directory_is_not_a_change(rules_dir: Callable[..., Path]) -> None:
    store = RuleStore(rules_dir(a__yaml=GOOD))
    store.load()
    assert store.reload() is None


def test_a_failing_hook_does_not_stop_the_reload(rules_dir: Callable[..., Path]) -> None:
    store = RuleStore(rules_dir(a__yaml=GOOD))

    def explode(record: ChangeRecord) -> None:
        raise RuntimeError("telemetry down")

    store.hooks.append(explode)
    assert store.load() is not None and store.loaded


async def test_the_watcher_hot_reloads_without_restart(rules_dir: Callable[..., Path]) -> None:
    directory = rules_dir(a__yaml=GOOD)
    store = RuleStore(directory)
    await store.start(force_polling=True)
    try:
        first = store.live.ruleset.digest
        await asyncio.sleep(0.3)  # let the watcher take its first snapshot
        (directory / "b.yaml").write_text(SECOND, encoding="utf-8")
        for _ in range(100):
            if store.live.ruleset.digest != first:
                break
            await asyncio.sleep(0.05)
        assert {r.id for r in store.live.ruleset.rules} == {"injection.test.sample", "injection.test.second"}
    finally:
        await store.close()
