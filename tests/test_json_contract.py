"""Every command run without a terminal: JSON parses and matches docs/json.md (issue 16)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.test_output import Run, vhc

DOCS = Path(__file__).resolve().parents[1] / "docs" / "json.md"
AMOUNT_KEYS = {"amount", "price", "filled", "free", "used", "total", "fee", "cost", "value",
               "limit", "headroom", "average", "usd", "proceeds", "cost_basis", "gain",
               "discrepancy", "discrepancy_usd", "value_usd", "local_balance",
               "exchange_balance"}  # fmt: skip
NORMALIZED = re.compile(r"^-?\d+(\.\d*[1-9])?$")
LOOKS_LIKE_TIME = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d")


def documented_keys() -> dict[str, list[str]]:
    """`### record` headings of docs/json.md and the keys of the table under each."""
    records: dict[str, list[str]] = {}
    current = None
    for line in DOCS.read_text().splitlines():
        if line.startswith("### "):
            current = line[4:].strip()
            records[current] = []
        elif line.startswith("## "):
            current = None
        elif current and (m := re.match(r"^\| `(\w+)` \|", line)):
            records[current].append(m.group(1))
    return records


RECORDS = documented_keys()


def check_values(value: Any, key: str = "") -> None:
    """Amounts normalized strings, timestamps RFC 3339 with an offset, no JSON inside JSON."""
    if isinstance(value, dict):
        for k, v in value.items():
            check_values(v, k)
    elif isinstance(value, list):
        for v in value:
            check_values(v, key)
    elif isinstance(value, str):
        if LOOKS_LIKE_TIME.match(value):
            parsed = datetime.fromisoformat(value)
            assert "T" in value and parsed.tzinfo is not None, (key, value)
        if key in AMOUNT_KEYS and value and value[0] in "-0123456789":
            assert NORMALIZED.match(value), (key, value)
        assert not (value[:1] == "{" and value[-1:] == "}"), (key, value)
    elif isinstance(value, float):
        assert key not in AMOUNT_KEYS, (key, value)


def is_record(kind: str, value: Any) -> None:
    assert isinstance(value, dict), value
    assert sorted(value) == sorted(RECORDS[kind]), (kind, sorted(value))


def run_json(*args: str) -> tuple[Run, Any]:
    run = vhc(*args, "--json")
    doc = json.loads(run.out)  # exactly one document: anything else fails to parse
    check_values(doc)
    if run.code not in (0, 1):
        error = doc["error"]
        assert error["exit_code"] == run.code and error["kind"] and error["message"]
        assert run.err.strip().splitlines()[-1] == f"error: {error['message']}"
    return run, doc


def test_docs_name_every_record() -> None:
    expected = {"order", "trade", "balance", "check", "withdrawal_request", "allowlist_entry"}
    assert expected | {"ledger_event"} <= set(RECORDS)
    assert all(RECORDS.values())


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    run, doc = run_json("init", str(tmp_path / "ws"))
    assert run.code == 0 and Path(doc["home"]).is_dir()
    return Path(doc["home"])


def test_every_command_json_matches_docs(ws: Path) -> None:
    h = ("--home", str(ws))
    run, doc = run_json(*h, "trade", "buy", "SOL/USD", "1")
    assert run.code == 0
    is_record("order", doc["order"])
    for check in doc["checks"]:
        is_record("check", check)
    run, doc = run_json(
        *h, "trade", "buy", "BTC/USD", "0.001", "--type", "limit", "--price", "1000"
    )
    open_id = doc["order"]["order_id"]
    assert doc["order"]["status"] == "open"
    run, doc = run_json(*h, "trade", "orders", "--all")
    assert len(doc) == 2
    for order in doc:
        is_record("order", order)
    run, doc = run_json(*h, "trade", "cancel", open_id)
    is_record("order", doc)
    assert doc["status"] == "canceled"
    run, doc = run_json(*h, "balances")
    for per in doc["balances"].values():
        for balance in per.values():
            is_record("balance", balance)
    run, doc = run_json(*h, "ledger", "log")
    for event in doc:
        is_record("ledger_event", event)
        assert isinstance(event["details"], dict)
    run, doc = run_json(*h, "withdraw", "list", "--status", "all")
    for request in doc:
        is_record("withdrawal_request", request)
    run, doc = run_json(*h, "withdraw", "allowlist", "list")
    for entry in doc:
        is_record("allowlist_entry", entry)
    run, doc = run_json(*h, "trade", "buy", "BTC/USD", "1000", "--dry-run")
    assert run.code == 3
    for check in doc["error"]["checks"]:
        is_record("check", check)
    # Everything else: one document, the rules above, the error object on failure.
    for args in (
        ("ledger", "verify"),
        ("ledger", "digest"),
        ("ledger", "export", "--output", str(ws / "reports" / "t.csv")),
        ("reconcile", "--date", "today"),
        ("kill-switch", "--status"),
        ("kill-switch", "--check"),
        ("config", "validate"),
        ("config", "show"),
        ("totp", "list"),
        ("secrets", "check"),
        ("tax-report", "--year", "2026"),
        ("trade", "recover"),
        ("withdraw", "recover"),
        ("doctor",),
    ):
        run, _ = run_json(*h, *args)
        assert "Traceback" not in run.err, args


def test_tables_piped_are_never_cut_or_wrapped(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")  # a narrow terminal width must not matter off a terminal
    h = ("--home", str(ws))
    assert vhc(*h, "trade", "buy", "SOL/USD", "1").code == 0
    for args in (
        ("trade", "orders", "--all"),
        ("balances",),
        ("ledger", "log"),
        ("ledger", "verify"),
        ("reconcile", "--date", "today"),
        ("kill-switch", "--status"),
        ("withdraw", "list"),
        ("withdraw", "allowlist", "list"),
        ("config", "validate"),
        ("totp", "list"),
        ("secrets", "check"),
        ("doctor",),
        ("trade", "buy", "BTC/USD", "1000", "--dry-run"),
    ):
        run = vhc(*h, *args)
        assert "…" not in run.out + run.err, args
        assert "Traceback" not in run.err, args
        lines = run.out.splitlines()
        tabular = [line for line in lines if "\t" in line]
        if tabular:  # header + rows, every row as wide as the header
            width = tabular[0].count("\t")
            assert all(line.count("\t") == width for line in tabular), args
        for line in run.err.splitlines():  # one message, one line: nothing broken at 40
            assert not line.startswith(" "), (args, line)
    wide = vhc(*h, "trade", "buy", "BTC/USD", "1000", "--dry-run")
    assert max(len(line) for line in wide.out.splitlines()) > 40
    assert len(wide.err.splitlines()) == 1


def test_log_lines_start_with_rfc3339_and_an_offset(ws: Path) -> None:
    assert vhc("--home", str(ws), "trade", "buy", "SOL/USD", "1").code == 0
    lines = (ws / "logs" / "trading.log").read_text().splitlines()
    assert lines
    for line in lines:
        words = line.split(" ", 2)
        # With `logging.immutable`, each line starts with its link in the day's hash chain.
        first = words[1] if re.fullmatch(r"[0-9a-f]{64}", words[0]) else words[0]
        stamp = datetime.fromisoformat(first)
        assert stamp.tzinfo is not None and stamp.utcoffset() is not None, line
