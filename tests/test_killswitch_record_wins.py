"""The ledger's record of the kill switch wins over its state file, in every reader.

Someone at the keyboard can delete or edit `state/kill_switch.json`; the metric and the
automatic triggers must still see the switch the ledger recorded as active.
"""

import json

from ccxtkit.metrics import collect
from tests.test_killswitch import make_workspace, paper, run_cli


def _metric(ws, name: str) -> float:
    from prometheus_client.exposition import generate_latest

    for line in generate_latest(collect(ws, wait_seconds=5)).decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def _forge_inactive(ws) -> None:
    path = ws.state_dir / "kill_switch.json"
    state = json.loads(path.read_text())
    path.write_text(json.dumps({**state, "active": False}))


def test_metric_and_check_see_the_recorded_activation_through_an_edited_file(tmp_path, capsys):
    ws = make_workspace(tmp_path, {"paper": paper()})
    code, _, err = run_cli(ws, ["kill-switch", "--activate", "--reason", "drill"], capsys)
    assert code == 0, err
    _forge_inactive(ws)
    assert _metric(ws, "vhc_kill_switch_active") == 1

    code, _, err = run_cli(ws, ["kill-switch", "--check"], capsys)
    assert code == 4, err
    assert "already active" in err and "ledger" in err


def test_metric_sees_the_recorded_activation_through_a_deleted_file(tmp_path, capsys):
    ws = make_workspace(tmp_path, {"paper": paper()})
    code, _, err = run_cli(ws, ["kill-switch", "--activate", "--reason", "drill"], capsys)
    assert code == 0, err
    (ws.state_dir / "kill_switch.json").unlink()
    assert _metric(ws, "vhc_kill_switch_active") == 1


def test_metric_is_zero_when_the_switch_was_never_thrown(tmp_path, capsys):
    ws = make_workspace(tmp_path, {"paper": paper()})
    code, _, err = run_cli(
        ws, ["trade", "buy", "BTC/USD", "0.001", "--exchange", "paper", "--yes"], capsys
    )
    assert code == 0, err
    assert _metric(ws, "vhc_kill_switch_active") == 0


def test_a_sweep_on_another_configs_accounts_is_reported_failed(tmp_path, capsys):
    import yaml

    ws = make_workspace(tmp_path, {"paper": paper(), "desk": paper()})
    code, _, err = run_cli(
        ws, ["trade", "buy", "BTC/USD", "0.001", "--exchange", "paper", "--yes"], capsys
    )
    assert code == 0, err  # the ledger now records the policy with both accounts
    other = tmp_path / "other.yaml"
    doc = yaml.safe_load((ws.home / "config" / "trading_config.yaml").read_text())
    doc["exchanges"]["desk"]["enabled"] = False  # its resting orders would not be swept
    other.write_text(yaml.safe_dump(doc))
    other.chmod(0o600)

    code, out, err = run_cli(
        ws, ["--config", str(other), "--json", "kill-switch", "--activate", "--reason", "x"], capsys
    )
    assert code == 5, err
    assert "exchanges.desk.enabled" in err and "recorded accounts" in err
    assert "exchanges.desk.enabled" in json.loads(out)["error"]["message"]
    assert (ws.state_dir / "kill_switch.json").exists()  # the switch itself is on regardless
