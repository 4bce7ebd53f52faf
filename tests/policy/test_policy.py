"""Policy loading: schema errors with file and line, defaults, key hashes, hot reload, CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from proxy.cli import app
from proxy.errors import ConfigError, Unauthorized
from proxy.model import Action, Severity
from proxy.policy.loader import load_policy
from proxy.policy.spec import Scope, TaintMode, hash_key
from proxy.policy.store import PolicyStore

GOOD = f"""kind: policy
version: 1
tools:
  send_email: {{scope: side_effect, sensitive_args: [to]}}
defaults:
  taint_mode: drop_side_effects
  actions: {{high: block}}
clients:
  - name: app
    key_sha256: "{hash_key('app-key')}"
    tools: [send_email]
    segregation: datamark
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_loads_clients_defaults_and_catalogue(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, GOOD))
    client = policy.authenticate("app-key")
    assert client.name == "app" and client.allows("send_email") and not client.allows("other")
    assert client.taint_mode is TaintMode.DROP_SIDE_EFFECTS  # inherited from defaults
    assert client.segregation == "datamark"
    assert client.action_for(Severity.HIGH) is Action.BLOCK
    assert client.action_for(Severity.LOW) is Action.TAG
    assert policy.tool("send_email").scope is Scope.SIDE_EFFECT
    undeclared = policy.tool("launch")
    assert undeclared.scope is Scope.SIDE_EFFECT and undeclared.sensitive_args is None and not undeclared.declared
    assert policy.digest.startswith("sha256:")


def test_keys_are_required_once_any_is_defined(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, GOOD))
    with pytest.raises(Unauthorized, match="unknown"):
        policy.authenticate("nope")
    with pytest.raises(Unauthorized, match="missing"):
        policy.authenticate(None)
    assert load_policy(tmp_path / "absent.yaml").authenticate(None).name == "default"


def test_a_key_sets_its_answer_link_mode_and_hosts(tmp_path: Path) -> None:
    text = GOOD + "    answer_links: off\n    link_hosts: [status.example.com]\n"
    client = load_policy(write(tmp_path, text)).authenticate("app-key")
    assert client.answer_links == "off" and client.link_hosts == ("status.example.com",)
    assert load_policy(write(tmp_path, GOOD)).authenticate("app-key").answer_links is None  # the stage decides
    with pytest.raises(ConfigError, match="answer_links"):
        load_policy(write(tmp_path, GOOD + "    answer_links: drop\n"))


@pytest.mark.parametrize(("text", "where"), [
    (GOOD.replace("scope: side_effect", "scope: write"), "policy.yaml:4: field 'tools.send_email.scope'"),
    (GOOD.replace("taint_mode: drop_side_effects", "taint_mode: maybe"), "policy.yaml:6: field 'defaults.taint_mode'"),
    (GOOD + "  - name: dup\n    key_sha256: \"" + hash_key("app-key") + "\"\n", "client 'dup': field 'key_sha256'"),
    ("kind: policy\nversion: 1\nversion: 2\n", "duplicate key 'version'"),
    ("kind: policy\nversion: [\n", "not valid YAML"),
])
def test_broken_files_name_file_line_and_field(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_policy(write(tmp_path, text))
    assert where in err.value.message


def test_reload_keeps_the_last_good_policy(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    store = PolicyStore(path)
    first = store.current.digest
    path.write_text(GOOD.replace("scope: side_effect", "scope: nonsense"))
    assert store.reload() is False and store.current.digest == first
    assert store.last_error is not None and "scope" in store.last_error
    path.write_text(GOOD.replace("datamark", "encode"))
    assert store.reload() is True and store.current.digest != first
    assert store.current.authenticate("app-key").segregation == "encode"


def test_an_undeclared_tool_rule_is_shared_and_a_reload_that_declares_it_wins(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    store = PolicyStore(path)
    before = store.current.tool("read_notes")
    assert not before.declared and before is store.current.tool("read_notes")  # built once, reused
    path.write_text(GOOD.replace("tools:\n", "tools:\n  read_notes: {scope: read}\n", 1))
    assert store.reload() is True
    after = store.current.tool("read_notes")
    assert after.declared and after.scope is Scope.READ
    path.write_text(GOOD)
    assert store.reload() is True and not store.current.tool("read_notes").declared


async def test_watcher_hot_reloads_a_changed_file(tmp_path: Path) -> None:
    import asyncio

    path = write(tmp_path, GOOD)
    store = PolicyStore(path)
    await store.start()
    try:
        await asyncio.sleep(0.3)
        path.write_text(GOOD.replace("datamark", "off"))
        for _ in range(50):
            await asyncio.sleep(0.1)
            if store.current.authenticate("app-key").segregation == "off":
                break
        assert store.current.authenticate("app-key").segregation == "off"
    finally:
        await store.close()


def test_cli_hash_key_and_check(tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["policy", "hash-key", "app-key"])
    assert out.exit_code == 0 and out.stdout.strip() == hash_key("app-key")
    ok = runner.invoke(app, ["policy", "check", str(write(tmp_path, GOOD))])
    assert ok.exit_code == 0 and "1 clients" in ok.stdout
    bad = runner.invoke(app, ["policy", "check", str(write(tmp_path, "kind: policy\nversion: 3\n"))])
    assert bad.exit_code == 1 and "version" in bad.output


def test_shipped_policy_is_valid() -> None:
    from proxy.settings import DEFAULT_RULES_DIR

    policy = load_policy(DEFAULT_RULES_DIR / "policy.yaml")
    assert not policy.clients and policy.tool("send_email").scope is Scope.SIDE_EFFECT
