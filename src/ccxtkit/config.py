"""pydantic models of `trading_config.yaml`, loading with errors that name the key and line."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError


class Model(BaseModel):
    """Strict base: unknown keys are errors, so a typo never silently disables a limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PaperSettings(Model):
    """Options of the built-in paper exchange (`id: paper`)."""

    starting_balances: dict[str, Decimal] = Field(
        default_factory=lambda: {"USD": Decimal("100000")}
    )
    fee_rate: Decimal = Decimal("0.001")
    slippage_bps: Decimal = Decimal("5")
    price_source: str = "simulated"  # or a ccxt id whose public ticker gives prices
    quote: str = "USD"
    latency_ms: Decimal = Field(default=Decimal("0"), ge=0)  # fault hook: delay per call
    fail_calls: bool = False  # fault hook: every call fails like an unreachable exchange


class KiteSettings(Model):
    """Options of a Zerodha Kite Connect account (`id: kite`)."""

    root: str | None = None  # API root; None: Kite's own (https://api.kite.trade)
    timeout_seconds: Decimal = Field(default=Decimal("7"), gt=0)
    holidays: list[str] = Field(default_factory=list)  # NSE trading holidays, YYYY-MM-DD
    product: Literal["MIS", "CNC", "NRML"] = "CNC"  # when `vhc trade` names none
    #: INR per USD for the risk limits when the ledger has no recent recorded rate (None: refuse).
    inr_per_usd: Decimal | None = Field(default=None, gt=0)

    @field_validator("holidays", mode="before")
    @classmethod
    def _iso_dates(cls, v: Any) -> list[str]:
        out = []
        for item in v or []:
            try:
                out.append(date.fromisoformat(str(item)).isoformat())
            except ValueError:
                raise ValueError(f"{item!r} is not a date (YYYY-MM-DD)") from None
        return out


class ExchangeConfig(Model):
    """One account. Its name in vhc is the key under `exchanges:`."""

    id: str | None = None
    enabled: bool = True
    sandbox: bool = False
    rate_limit: Decimal = Decimal("10")
    ip_allowlist: list[str] = Field(default_factory=list)
    secrets: Literal["keyring", "vault", "aws", "env", "none"] = "keyring"
    ccxt: dict[str, Any] = Field(default_factory=dict)
    paper: PaperSettings = Field(default_factory=PaperSettings)
    kite: KiteSettings = Field(default_factory=KiteSettings)
    cash_currencies: list[str] = Field(default_factory=lambda: ["USD", "USDT", "USDC"])
    dust: Decimal = Decimal("0.00000001")
    #: How long the market list fetched from the exchange is reused (0: ask every run).
    markets_cache_seconds: int = Field(default=3600, ge=0)
    #: Trade live although vhc cannot prove an order absent here (see `vhc exchanges`).
    allow_unproven_lookup: bool = False

    @model_validator(mode="after")
    def _kite_only_on_kite(self) -> ExchangeConfig:
        # A `kite:` block on any other account would do nothing: refused, not ignored.
        if "kite" in self.model_fields_set and self.id not in (None, "kite"):
            raise ValueError(f"`kite:` settings are for `id: kite` accounts, not `id: {self.id}`")
        return self

    @field_validator("rate_limit")
    @classmethod
    def _positive_rate(cls, v: Decimal) -> Decimal:
        if v <= 0:
            raise ValueError("must be greater than 0 (calls per second)")
        return v


class CircuitBreaker(Model):
    """N failed or rejected orders within M minutes (mode `window`), or N in a row with no
    order filling between them (mode `consecutive`), trip the kill switch."""

    enabled: bool = True
    max_failures: int = Field(default=10, ge=1)
    window_minutes: int = Field(default=5, ge=1)
    mode: Literal["window", "consecutive"] = "window"


class RiskConfig(Model):
    """Hard pre-trade limits, in USD unless named otherwise."""

    max_order_value: Decimal = Field(default=Decimal("10000"), ge=0)
    max_daily_volume: Decimal = Field(default=Decimal("50000"), ge=0)
    max_position_size: Decimal = Field(default=Decimal("25000"), ge=0)
    max_drawdown_pct: Decimal = Field(default=Decimal("15"), ge=0, le=100)
    kill_switch_enabled: bool = True
    max_open_orders: int = Field(default=50, ge=0)
    max_open_positions: int | None = Field(default=None, ge=0)
    max_position_pct: Decimal | None = Field(default=None, ge=0, le=100)  # % of portfolio
    daily_loss_limit: Decimal | str | None = None  # USD amount, or "5%" of capital
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)

    @field_validator("daily_loss_limit")
    @classmethod
    def _loss_limit(cls, v: Decimal | str | None) -> Decimal | str | None:
        if isinstance(v, str):
            text = v.strip()
            number = text[:-1] if text.endswith("%") else text
            try:
                value = Decimal(number)
            except ArithmeticError:
                value = Decimal("NaN")
            if not value.is_finite() or value <= 0 or (text.endswith("%") and value > 100):
                raise ValueError("must be a USD amount or a percentage like '5%'")
            return text
        if v is not None and (not v.is_finite() or v <= 0):
            raise ValueError("must be a positive USD amount or a percentage like '5%'")
        return v


class AllowlistEntry(Model):
    """An address withdrawals may go to."""

    address: str
    asset: str | None = None
    network: str | None = None
    label: str | None = None


#: Without `daily_auto_approve_cap_usd`, auto-approvals stop at this many times the threshold.
AUTO_CAP_MULTIPLE = Decimal("5")


class WithdrawalsConfig(Model):
    """Withdrawal policy: approvals, allowlist, caps."""

    auto_approve_under: Decimal = Field(default=Decimal("0"), ge=0)
    # Where the approval request goes: the email or sms alert channel, or nowhere (manual).
    approval_method: Literal["email", "sms", "manual"] = "manual"
    recipient_allowlist: list[str | AllowlistEntry] = Field(default_factory=list)
    new_address_delay_hours: Decimal = Field(default=Decimal("24"), ge=0)
    require_two_approvals_over: Decimal | None = Field(default=None, ge=0)
    time_lock_hours: Decimal | None = Field(default=None, ge=0)
    daily_limit_usd: Decimal | None = Field(default=None, ge=0)
    # Unset: AUTO_CAP_MULTIPLE x auto_approve_under; 0 turns auto-approval off.
    daily_auto_approve_cap_usd: Decimal | None = Field(default=None, ge=0)
    request_ttl_hours: Decimal = Field(default=Decimal("24"), gt=0)

    @field_validator("approval_method", mode="before")
    @classmethod
    def _lower_method(cls, v: Any) -> Any:
        # The seed spells it "SMS"; the values are case-insensitive.
        return v.strip().lower() if isinstance(v, str) else v

    @property
    def auto_cap_usd(self) -> Decimal:
        """The rolling 24 h cap on auto-approved withdrawals, the default filled in."""
        if self.daily_auto_approve_cap_usd is not None:
            return self.daily_auto_approve_cap_usd
        return self.auto_approve_under * AUTO_CAP_MULTIPLE


class LoggingConfig(Model):
    """Log files: one a UTC day, deleted after `retention_days`; `immutable` chains and seals them."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    retention_days: int = Field(default=2555, ge=1)
    immutable: bool = True
    file: str = "logs/trading.log"

    @model_validator(mode="before")
    @classmethod
    def _gone(cls, data: Any) -> Any:
        # Size-based rotation would delete days before retention_days: refuse, say what to use.
        for key in ("max_bytes", "backup_count"):
            if isinstance(data, dict) and key in data:
                raise ValueError(
                    f"logging.{key} is no longer used: logs are daily files kept for "
                    "logging.retention_days; remove the key"
                )
        return data


class ReconciliationConfig(Model):
    """Reconciliation schedule and tolerance."""

    frequency: Literal["daily", "hourly", "manual"] = "daily"
    alert_threshold: Decimal = Field(default=Decimal("0.01"), ge=0)


class EmailChannel(Model):
    """Alerts by SMTP; the password comes from the secrets backend, never this file."""

    host: str
    port: int = 587
    starttls: bool = True
    sender: str
    recipients: list[str]
    username: str | None = None
    password_secret: str | None = None  # name in the secrets backend
    ca_file: str | None = None  # extra CA bundle to trust (a private relay, or tests)


class WebhookChannel(Model):
    """Slack incoming webhook or a generic JSON webhook."""

    url: str


class TelegramChannel(Model):
    """Telegram bot; the token comes from the secrets backend."""

    chat_id: str
    token_secret: str = "telegram_bot_token"  # noqa: S105 - a name, not a secret
    api_base: str = "https://api.telegram.org"


_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class SmsChannel(Model):
    """SMS through Twilio's REST API; the auth token comes from the secrets backend."""

    account_sid: str  # Twilio's account id (AC...), not a secret
    from_number: str  # a Twilio number, E.164 (+15550001111)
    to_numbers: list[str] = Field(min_length=1)
    token_secret: str = "twilio_auth_token"  # noqa: S105 - a name, not a secret
    api_base: str = "https://api.twilio.com"

    @field_validator("from_number", "to_numbers", mode="before")
    @classmethod
    def _e164(cls, v: Any) -> Any:
        for number in v if isinstance(v, list) else [v]:
            if not isinstance(number, str) or not _E164.match(number):
                raise ValueError(
                    f"{number!r} is not a phone number in E.164 form: write it quoted, like "
                    "'+15550002222' (unquoted, YAML reads it as a number)"
                )
        return v


class AlertsConfig(Model):
    """Where alerts go, and how long a repeated alert is held back."""

    email: EmailChannel | None = None
    slack: WebhookChannel | None = None
    webhook: WebhookChannel | None = None
    telegram: TelegramChannel | None = None
    sms: SmsChannel | None = None
    dedup_minutes: int = Field(default=60, ge=0)
    min_severity: Literal["info", "warning", "critical"] = "info"


class MonitoringConfig(Model):
    """Metrics export and alert channels."""

    prometheus_port: int = Field(default=9090, ge=1, le=65535)
    grafana_port: int = Field(default=3000, ge=1, le=65535)
    healthcheck_interval: int = Field(default=60, ge=1)
    textfile_dir: str | None = None
    pushgateway_url: str | None = None
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)


class LedgerConfig(Model):
    """Where the ledger lives and how long to wait for its lock."""

    path: str = "ledger/vhc.duckdb"
    lock_wait_seconds: Decimal = Field(default=Decimal("30"), ge=0)


class TaxConfig(Model):
    """Defaults of the tax report."""

    method: Literal["fifo", "lifo", "hifo"] = "fifo"
    basis: Literal["per_wallet", "universal"] = "per_wallet"
    form_1099da: dict[str, Literal["none", "basis_reported", "basis_not_reported"]] = {}


class ServeConfig(Model):
    """`vhc serve`: request limits, and how its API tokens are signed."""

    #: Largest request body accepted (bytes); a bigger one is refused with 413 unread.
    max_body_bytes: int = Field(default=65536, ge=256)
    #: Each API token's bucket: refilled at this rate (requests per second), this deep.
    token_rate_per_second: Decimal = Field(default=Decimal("10"), gt=0)
    token_burst: int = Field(default=30, ge=1)
    #: Each signal source's bucket (webhook deliveries per second), this deep.
    source_rate_per_second: Decimal = Field(default=Decimal("50"), gt=0)
    source_burst: int = Field(default=200, ge=1)
    #: The named secret holding the tokens' HS256 key (created on first use).
    jwt_key_secret: str = "serve_jwt_key"  # noqa: S105 - a name, not a secret
    #: Longest lifetime `vhc serve token create --ttl` may give a token, in days.
    max_token_ttl_days: int = Field(default=365, ge=1)
    #: How often an idle signal worker looks at the queue (seconds): for retries falling due
    #: and signals queued by another process; intake in `vhc serve` wakes it at once.
    worker_poll_seconds: Decimal = Field(default=Decimal("2"), gt=0)


class VaultSettings(Model):
    """HashiCorp Vault / OpenBao access; the token comes from VAULT_TOKEN or AppRole."""

    address: str | None = None
    mount: str = "secret"
    path_prefix: str = "exchanges"
    verify_tls: bool = True
    role_id: str | None = None
    secret_id_env: str = "VAULT_SECRET_ID"  # noqa: S105 - a variable name


class AwsSettings(Model):
    """AWS Secrets Manager access."""

    region: str | None = None
    endpoint_url: str | None = None
    prefix: str = "trading/exchanges"


class SecretsConfig(Model):
    """Secrets backends' settings (never the secrets themselves)."""

    vault: VaultSettings = Field(default_factory=VaultSettings)
    aws: AwsSettings = Field(default_factory=AwsSettings)
    max_age_days: int = Field(default=90, ge=1)
    backend: Literal["keyring", "vault", "aws", "env"] = "keyring"  # for named secrets


class SignalSource(Model):
    """One webhook that may submit signals (`signals.sources.<name>`).

    Its credentials are the named secret `signals_<name>` (a JSON object with `key` and
    `secret`), or with `secrets: env` the variables `VHC_SIGNALS_<NAME>_KEY` and `_SECRET`.
    """

    kind: Literal["sheets", "telegram", "tradingview"]
    #: The account the source's signals trade on when a signal does not name a configured one.
    exchange: str | None = None
    chat_ids: list[int] = Field(default_factory=list)  # telegram: the only chats obeyed
    ip_allowlist: list[str] = Field(default_factory=list)  # addresses or networks (CIDR)
    secrets: Literal["keyring", "vault", "aws", "env"] | None = None  # default secrets.backend
    bot_api_base: str = "https://api.telegram.org"  # telegram: where replies are sent

    @model_validator(mode="after")
    def _kind_keys(self) -> SignalSource:
        if self.kind != "telegram":
            if self.chat_ids:
                raise ValueError(f"chat_ids is only for kind telegram (this is {self.kind})")
            if self.bot_api_base != "https://api.telegram.org":
                raise ValueError(f"bot_api_base is only for kind telegram (this is {self.kind})")
        elif not self.chat_ids:
            raise ValueError("a telegram source needs chat_ids: the chats whose signals count")
        return self

    @field_validator("ip_allowlist")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        import ipaddress

        for entry in v:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return v


class SignalsConfig(Model):
    """Signals from webhooks: how old one may be, how often it is tried, who may send one."""

    max_age_seconds: int = Field(default=300, ge=1)
    max_attempts: int = Field(default=5, ge=1, le=100)
    #: First retry after this many seconds, doubling each attempt (exponential backoff).
    retry_base_seconds: Decimal = Field(default=Decimal("5"), ge=0)
    workers: int = Field(default=2, ge=1, le=64)  # `vhc serve`'s queue workers
    sources: dict[str, SignalSource] = Field(default_factory=dict)

    @field_validator("sources")
    @classmethod
    def _names(cls, v: dict[str, SignalSource]) -> dict[str, SignalSource]:
        for name in v:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", name):
                raise ValueError(
                    f"source name {name!r}: use lower-case letters, digits, '_' and '-'"
                )
        return v


class TradingConfig(Model):
    """The whole `trading_config.yaml`."""

    version: str = "1.0"
    timezone: str | None = None
    exchanges: dict[str, ExchangeConfig] = Field(default_factory=dict)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    withdrawals: WithdrawalsConfig = Field(default_factory=WithdrawalsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    reconciliation: ReconciliationConfig = Field(default_factory=ReconciliationConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    tax: TaxConfig = Field(default_factory=TaxConfig)
    secrets: SecretsConfig = Field(default_factory=SecretsConfig)
    signals: SignalsConfig = Field(default_factory=SignalsConfig)

    @field_validator("version")
    @classmethod
    def _known_version(cls, v: str) -> str:
        if v.strip() not in ("1", "1.0"):
            raise ValueError(f'config version {v!r} is not one vhc reads (use "1.0")')
        return v

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str | None) -> str | None:
        if v is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {v!r} (use e.g. America/New_York)") from None
        return v

    @model_validator(mode="after")
    def _signal_accounts(self) -> TradingConfig:
        for name, source in self.signals.sources.items():
            if source.exchange is not None and source.exchange not in self.exchanges:
                known = ", ".join(sorted(self.exchanges)) or "none"
                raise ValueError(
                    f"signals.sources.{name}.exchange: no account {source.exchange!r} under "
                    f"exchanges (configured: {known})"
                )
        return self

    def enabled_exchanges(self) -> dict[str, ExchangeConfig]:
        """The accounts that are switched on, by name."""
        return {name: ex for name, ex in self.exchanges.items() if ex.enabled}

    def exchange(self, name: str) -> ExchangeConfig:
        """One account by name, or a clear error listing the names that exist."""
        try:
            return self.exchanges[name]
        except KeyError:
            known = ", ".join(sorted(self.exchanges)) or "none"
            raise ConfigError(
                f"no exchange account named {name!r} in the config (configured: {known})"
            ) from None


class _DecimalLoader(yaml.SafeLoader):
    """YAML floats become Decimal from their text, so 0.1 stays 0.1."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal | str:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        return Decimal(text)
    except ArithmeticError:
        return text  # .inf / .nan: left as text so validation names the key and line


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    # A repeated key would silently replace the first value (e.g. a second max_order_value).
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.value in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
            )
        seen.add(key_node.value)
    loader.flatten_mapping(node)
    return loader.construct_mapping(node)


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
_DecimalLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)

#: The same loader over libyaml when PyYAML has it (ten times faster: the config is read on
#: every command, and every minute by the kill-switch check). Only a valid file is read
#: with it; a problem is always reported by the pure loader, in its words.
_FastLoader: type[yaml.SafeLoader] = _DecimalLoader
if getattr(yaml, "__with_libyaml__", False):

    class _CDecimalLoader(yaml.CSafeLoader):
        """_DecimalLoader's constructors over libyaml's parser."""

    _CDecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
    _CDecimalLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
    _FastLoader = _CDecimalLoader  # type: ignore[assignment]


def _line_index(node: yaml.Node | None, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map each key path in the YAML document to its 1-based line number."""
    lines: dict[tuple[Any, ...], int] = {}
    if node is None:
        return lines
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines.update(_line_index(value_node, (*path, key)))
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(_line_index(item, (*path, i)))
    return lines


def _describe(error: dict[str, Any], lines: dict[tuple[Any, ...], int], source: str) -> str:
    # Union members add their type name to the location; keep only real keys and indexes.
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p[:1].isupper()))
    loc = tuple(p for p in loc if p not in ("str", "decimal", "int", "bool"))
    dotted = ".".join(str(p) for p in loc) or "(top level)"
    line = next((lines[loc[:i]] for i in range(len(loc), -1, -1) if loc[:i] in lines), None)
    where = f"{source}:{line}" if line else source
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key '{dotted}' (check its spelling against the example config)"
    value = error.get("input")
    shown = "" if isinstance(value, dict | list) or value is None else f" (got {value!r})"
    return f"{where}: {dotted}: {error['msg']}{shown}"


def _pure_load(text: str, source: str) -> Any:
    """The config's data by the pure-Python loader; its YAML error as a ConfigError."""
    try:
        return yaml.load(text, Loader=_DecimalLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}{line}: not valid YAML: {problem}") from None


def parse_config(text: str, source: str = "trading_config.yaml") -> TradingConfig:
    """Parse and validate config text; the error names the file, line and key."""
    try:
        data = yaml.load(text, Loader=_FastLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError:
        data = _pure_load(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    try:
        return TradingConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # The lines of the keys, read only now: a valid file (every run) is parsed once.
        document = yaml.compose(text, Loader=_DecimalLoader)
        first = _describe(dict(errors[0]), _line_index(document), source)
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(first + more) from None


def config_problems(text: str, source: str) -> list[str]:
    """Every problem in a config text, one line each (empty when valid)."""
    try:
        document = yaml.compose(text, Loader=_DecimalLoader)
        data = yaml.load(text, Loader=_DecimalLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError:
        try:
            parse_config(text, source)
        except ConfigError as exc:
            return [exc.message]
        return []
    if not isinstance(data, dict | None):
        return [f"{source}: the top level must be a mapping of sections"]
    try:
        TradingConfig.model_validate(data or {})
    except ValidationError as exc:
        lines = _line_index(document)
        return [_describe(dict(e), lines, source) for e in exc.errors()]
    return []


def load_yaml(text: str) -> Any:
    """The raw YAML data of a config text (Decimals for floats); call after validating it."""
    return yaml.load(text, Loader=_DecimalLoader)  # noqa: S506 - SafeLoader subclass


def load_config(path: Path) -> TradingConfig:
    """Read and validate the config file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found: run `vhc init` to create a workspace, "
            "or pass --home/--config"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    return parse_config(text, str(path))
