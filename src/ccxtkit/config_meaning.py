"""What each config key does: the module that reads it, and where vhc differs from the seed.

`USED_BY` names, for every leaf key of the config model, the module that acts on it
(tests/test_config_keys.py fails when a key has no reader). `SEED_NOTES` says, for each key
of the seed's example config whose comment promises something vhc does differently, what vhc
does; `vhc config validate` prints the notes of the keys a file sets.
"""

from __future__ import annotations

from typing import Any

#: Leaf key (``*`` = an account name) -> the module that reads it.
USED_BY: dict[str, str] = {
    "version": "ccxtkit.config",
    "timezone": "ccxtkit.trading.orders",
    "exchanges.*.id": "ccxtkit.exchanges.factory",
    "exchanges.*.enabled": "ccxtkit.config",
    "exchanges.*.sandbox": "ccxtkit.exchanges.gateway",
    "exchanges.*.rate_limit": "ccxtkit.exchanges.gateway",
    "exchanges.*.ip_allowlist": "ccxtkit.doctor",
    "exchanges.*.secrets": "ccxtkit.secrets",
    "exchanges.*.ccxt": "ccxtkit.exchanges.gateway",
    "exchanges.*.paper.starting_balances": "ccxtkit.exchanges.paper",
    "exchanges.*.paper.fee_rate": "ccxtkit.exchanges.paper",
    "exchanges.*.paper.slippage_bps": "ccxtkit.exchanges.paper",
    "exchanges.*.paper.price_source": "ccxtkit.exchanges.paper",
    "exchanges.*.paper.quote": "ccxtkit.exchanges.paper",
    "exchanges.*.paper.latency_ms": "ccxtkit.exchanges.paper",
    "exchanges.*.paper.fail_calls": "ccxtkit.exchanges.paper",
    "exchanges.*.kite.root": "ccxtkit.exchanges.kite",
    "exchanges.*.kite.timeout_seconds": "ccxtkit.exchanges.kite",
    "exchanges.*.kite.holidays": "ccxtkit.exchanges.kite_hours",
    "exchanges.*.kite.product": "ccxtkit.exchanges.kite",
    "exchanges.*.kite.inr_per_usd": "ccxtkit.exchanges.kite",
    "exchanges.*.cash_currencies": "ccxtkit.risk.flatten",
    "exchanges.*.dust": "ccxtkit.risk.flatten",
    "exchanges.*.markets_cache_seconds": "ccxtkit.exchanges.factory",
    "exchanges.*.allow_unproven_lookup": "ccxtkit.trading.accounts",
    "risk.max_order_value": "ccxtkit.risk.limits",
    "risk.max_daily_volume": "ccxtkit.risk.limits",
    "risk.max_position_size": "ccxtkit.risk.limits",
    "risk.max_drawdown_pct": "ccxtkit.risk.limits",
    "risk.kill_switch_enabled": "ccxtkit.risk.triggers",
    "risk.max_open_orders": "ccxtkit.risk.limits",
    "risk.max_open_positions": "ccxtkit.risk.triggers",
    "risk.daily_loss_limit": "ccxtkit.risk.triggers",
    "risk.circuit_breaker.enabled": "ccxtkit.risk.triggers",
    "risk.circuit_breaker.max_failures": "ccxtkit.risk.triggers",
    "risk.circuit_breaker.window_minutes": "ccxtkit.risk.triggers",
    "risk.circuit_breaker.mode": "ccxtkit.risk.triggers",
    "risk.max_position_pct": "ccxtkit.risk.limits",
    "withdrawals.auto_approve_under": "ccxtkit.withdrawals.policy",
    "withdrawals.recipient_allowlist": "ccxtkit.withdrawals.allowlist",
    "withdrawals.new_address_delay_hours": "ccxtkit.withdrawals.policy",
    "withdrawals.require_two_approvals_over": "ccxtkit.withdrawals.policy",
    "withdrawals.time_lock_hours": "ccxtkit.withdrawals.policy",
    "withdrawals.daily_limit_usd": "ccxtkit.withdrawals.policy",
    "withdrawals.daily_auto_approve_cap_usd": "ccxtkit.config",
    "withdrawals.request_ttl_hours": "ccxtkit.withdrawals.policy",
    "withdrawals.approval_method": "ccxtkit.withdrawals.notify",
    "logging.level": "ccxtkit.config_memo",
    "logging.retention_days": "ccxtkit.config_memo",
    "logging.immutable": "ccxtkit.config_memo",
    "logging.file": "ccxtkit.config_memo",
    "reconciliation.frequency": "ccxtkit.deploy",
    "reconciliation.alert_threshold": "ccxtkit.reconcile.service",
    "monitoring.prometheus_port": "ccxtkit.cli.metrics_cmd",
    "monitoring.grafana_port": "ccxtkit.deploy",
    "monitoring.healthcheck_interval": "ccxtkit.cli.metrics_cmd",
    "monitoring.textfile_dir": "ccxtkit.metrics",
    "monitoring.pushgateway_url": "ccxtkit.metrics",
    "monitoring.alerts.email.host": "ccxtkit.alerts.channels",
    "monitoring.alerts.email.port": "ccxtkit.alerts.channels",
    "monitoring.alerts.email.starttls": "ccxtkit.alerts.channels",
    "monitoring.alerts.email.sender": "ccxtkit.alerts.channels",
    "monitoring.alerts.email.recipients": "ccxtkit.alerts.channels",
    "monitoring.alerts.email.username": "ccxtkit.alerts.channels",
    "monitoring.alerts.email.password_secret": "ccxtkit.alerts.channels",
    "monitoring.alerts.email.ca_file": "ccxtkit.alerts.channels",
    "monitoring.alerts.slack.url": "ccxtkit.alerts.channels",
    "monitoring.alerts.webhook.url": "ccxtkit.alerts.channels",
    "monitoring.alerts.telegram.chat_id": "ccxtkit.alerts.channels",
    "monitoring.alerts.telegram.token_secret": "ccxtkit.alerts.channels",
    "monitoring.alerts.telegram.api_base": "ccxtkit.alerts.channels",
    "monitoring.alerts.sms.account_sid": "ccxtkit.alerts.channels",
    "monitoring.alerts.sms.from_number": "ccxtkit.alerts.channels",
    "monitoring.alerts.sms.to_numbers": "ccxtkit.alerts.channels",
    "monitoring.alerts.sms.token_secret": "ccxtkit.alerts.channels",
    "monitoring.alerts.sms.api_base": "ccxtkit.alerts.channels",
    "monitoring.alerts.dedup_minutes": "ccxtkit.alerts",
    "monitoring.alerts.min_severity": "ccxtkit.alerts",
    "ledger.path": "ccxtkit.config_memo",
    "ledger.lock_wait_seconds": "ccxtkit.config_memo",
    "serve.max_body_bytes": "ccxtkit.serve.app",
    "serve.token_rate_per_second": "ccxtkit.serve.app",
    "serve.token_burst": "ccxtkit.serve.app",
    "serve.source_rate_per_second": "ccxtkit.serve.app",
    "serve.source_burst": "ccxtkit.serve.app",
    "serve.jwt_key_secret": "ccxtkit.serve.tokens",
    "serve.max_token_ttl_days": "ccxtkit.serve.tokens",
    "serve.worker_poll_seconds": "ccxtkit.serve.server",
    "tax.method": "ccxtkit.tax.report",
    "tax.basis": "ccxtkit.tax.report",
    "tax.form_1099da": "ccxtkit.tax.report",
    "secrets.vault.address": "ccxtkit.secrets.vault",
    "secrets.vault.mount": "ccxtkit.secrets.vault",
    "secrets.vault.path_prefix": "ccxtkit.secrets.vault",
    "secrets.vault.verify_tls": "ccxtkit.secrets.vault",
    "secrets.vault.role_id": "ccxtkit.secrets.vault",
    "secrets.vault.secret_id_env": "ccxtkit.secrets.vault",
    "secrets.aws.region": "ccxtkit.secrets.aws",
    "secrets.aws.endpoint_url": "ccxtkit.secrets.aws",
    "secrets.aws.prefix": "ccxtkit.secrets.aws",
    "secrets.max_age_days": "ccxtkit.secrets.check",
    "secrets.backend": "ccxtkit.secrets",
    "signals.max_age_seconds": "ccxtkit.signals.intake",
    "signals.max_attempts": "ccxtkit.signals.worker",
    "signals.retry_base_seconds": "ccxtkit.signals.worker",
    "signals.workers": "ccxtkit.signals.worker",
    "signals.sources.*.kind": "ccxtkit.signals.intake",
    "signals.sources.*.exchange": "ccxtkit.signals.intake",
    "signals.sources.*.chat_ids": "ccxtkit.signals.intake",
    "signals.sources.*.ip_allowlist": "ccxtkit.signals.intake",
    "signals.sources.*.secrets": "ccxtkit.signals.credentials",
    "signals.sources.*.bot_api_base": "ccxtkit.signals.telegram",
}

#: Keys accepted today whose reader is being built in this wave (issue 17), with who does it.
#: The keys test fails for a key here once some module reads it: move it to USED_BY then.
PENDING: dict[str, str] = {}

#: Where vhc's meaning differs from the comment beside the key in the seed's example config.
#: The `withdrawals` section's notes come from `withdrawals.config_notes` (they need the ledger).
SEED_NOTES: dict[str, str] = {
    "exchanges.*.sandbox": (
        "the seed says 'true for testnet/paper trading': in vhc `sandbox` is the exchange's "
        "own testnet; paper trading is an account with `id: paper` (the built-in simulator)"
    ),
    "exchanges.*.ip_allowlist": (
        "vhc does not enforce it (the exchange does, on the API key); `vhc doctor` compares it "
        "with the key's restrictions where ccxt exposes them (Binance) and says where it cannot"
    ),
    "risk.max_drawdown_pct": (
        "'stop trading' means: orders that add risk are refused once the portfolio is this far "
        "below its high-water mark (sells into cash still pass), and `vhc kill-switch --check` "
        "(cron, every minute) trips the switch; 0 disables it"
    ),
    "risk.kill_switch_enabled": (
        "false turns off the automatic triggers only; `vhc kill-switch --activate` always works"
    ),
    "logging.retention_days": (
        "log files are daily and deleted after this many days; the ledger (the tax record) is "
        "never pruned"
    ),
    "logging.immutable": (
        "'append-only' means: files opened append-only, every line hash-chained, each finished "
        "day's last hash sealed in the ledger; tampering is detected by `vhc doctor`, not "
        "prevented (use `chattr +a` or remote logging for that)"
    ),
    "reconciliation.frequency": (
        "vhc does not run by itself: install the schedule `vhc deploy schedule` prints; "
        "`vhc doctor` warns when the last reconcile is older than the frequency allows"
    ),
    "reconciliation.alert_threshold": (
        "compared per exchange and asset with the discrepancy's USD value"
    ),
    "monitoring.prometheus_port": (
        "the port `vhc metrics serve` listens on; 9090 is also the Prometheus server's own "
        "default port, so on one host pick another (e.g. 9477)"
    ),
    "monitoring.grafana_port": (
        "vhc runs no Grafana: `vhc deploy grafana` writes it into grafana.ini's http_port"
    ),
    "monitoring.healthcheck_interval": (
        "only `vhc metrics serve` probes the exchanges on this interval; cron-only setups see "
        "`vhc_exchange_up` from the last command's calls"
    ),
}


def _present(data: Any, parts: list[str]) -> bool:
    if not parts:
        return True
    if not isinstance(data, dict):
        return False
    head, rest = parts[0], parts[1:]
    if head == "*":
        return any(_present(v, rest) for v in data.values())
    return head in data and _present(data[head], rest)


def seed_notes(data: dict[str, Any]) -> list[str]:
    """The notes of every key the raw config `data` sets, one line each."""
    return [
        f"note: {key}: {text}" for key, text in SEED_NOTES.items() if _present(data, key.split("."))
    ]
