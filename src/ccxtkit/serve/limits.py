"""`PUT /api/v1/risk/limits`: change risk limits through the same 2FA policy rule as the CLI.

A change is the config file's `risk:` section edited and then `vhc config apply`'d, done in one
request: the new config is validated first (422, nothing written); the file is written; then
`policy.service.apply_policy` records it exactly as `vhc config apply --auth-code` does: a
change that loosens any limit needs an enrolled approver's valid, unused code, a change that
only tightens is recorded without one. A refused change (no code, a wrong or reused one: 403)
puts the file back as it was, so nothing changes. An accepted one is also a
`serve.limits_changed` event naming the token, and this server uses the new limits from its next
order on (its workers and intake share the one workspace whose config is replaced).

The file is rewritten from its parsed form: its comments are not kept.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ccxtkit.errors import ConfigError, UsageError
from ccxtkit.workspace import Workspace, write_private

#: One change at a time in this process (the file's text is read, edited and written back).
_lock = threading.Lock()


@dataclass(frozen=True)
class LimitsChange:
    """What a change did: how it was recorded (approved, tightened...) and every key changed."""

    how: str
    seq: int | None
    policy_hash: str
    changes: list[dict[str, Any]]
    limits: dict[str, Any]


def _plain(value: Any) -> Any:
    """JSON values as YAML can write them; numbers stay text (never a float)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        text = str(value)
        if text.lstrip("-").isdigit():
            return int(text)
        return text
    return value


def _yaml_number(dumper: Any, value: Decimal) -> Any:
    return dumper.represent_scalar("tag:yaml.org,2002:str", format(value, "f"))


def change_limits(
    ws: Workspace,
    limits: dict[str, Any],
    code: str | None,
    approver: str | None,
    actor: str,
) -> LimitsChange:
    """Apply `limits` (keys of the config's `risk:` section) under the policy rule."""
    import yaml

    from ccxtkit.config import RiskConfig, parse_config
    from ccxtkit.policy.service import apply_policy, enforce_policy

    if not limits:
        raise UsageError("give `limits`: an object of risk settings to change")
    unknown = sorted(set(limits) - set(RiskConfig.model_fields))
    if unknown:
        raise UsageError(
            f"not a risk limit: {', '.join(unknown)} (known: "
            f"{', '.join(sorted(RiskConfig.model_fields))})"
        )
    with _lock:
        path = ws.config_path
        before = path.read_text(encoding="utf-8")
        data = yaml.safe_load(before) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        risk = dict(data.get("risk") or {})
        risk.update(_plain(limits))
        data["risk"] = risk

        class Dumper(yaml.SafeDumper):
            pass

        Dumper.add_representer(Decimal, _yaml_number)
        after = yaml.dump(data, Dumper=Dumper, sort_keys=False)
        new_config = parse_config(after, str(path))  # 422 on a bad value, nothing written
        staged = Workspace(ws.home, ws.config_path)
        staged.__dict__["config"] = new_config  # the config this change would make
        write_private(path, after)
        try:
            applied = apply_policy(staged, code, approver)
        except BaseException:
            write_private(path, before)  # refused (or failed): the file as it was
            raise
        # This server's own workspace (its intake and workers) uses the new limits now.
        ws.__dict__["config"] = new_config
        enforce_policy(ws)  # the record now matches: marks this workspace as checked
        changes = [
            {"key": c.key, "old": _shown(c.old), "new": _shown(c.new), "direction": c.direction}
            for c in applied.changes
        ]
        with ws.open_ledger() as ledger:
            ledger.record_event(
                "serve.limits_changed",
                {"how": applied.how, "policy_seq": applied.seq, "changes": changes},
                actor=actor,
                subject="risk",
            )
    return LimitsChange(
        applied.how,
        applied.seq,
        applied.hash,
        changes,
        new_config.risk.model_dump(mode="json"),
    )


def _shown(value: Any) -> Any:
    from ccxtkit.policy.rules import ABSENT

    return None if value is ABSENT else value
