"""Loading and validating ``config.toml``.

``[reviewer]`` holds the engine's settings; ``[rules.<ID>]`` one rule's options
plus the keys every rule shares (``enabled``, ``severity``, ``approval``),
which are split off here, once, so no rule handles them. A bad config raises
``ConfigError`` whose message names the file, the table, the option and what
was expected.
"""

from __future__ import annotations

import os
import re
import tomllib
import zoneinfo
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from reviewer.experiment_settings import parse_experiments
from reviewer.incidents import IncidentSettings
from reviewer.notify import NotifySettings, Receiver
from rules import REGISTRY
from store import STORE_SCHEMES, STORE_URL_FORMS, Approval, Severity
from store.goals import RATE_WINDOW, RUNNING_WEIGHT, STALLED_AFTER
from store.timeutil import Duration, fmt_duration

CONFIG_ENV = "REVIEWER_CONFIG"
TOKEN_ENV = "REVIEWER_API_TOKEN"
# REVIEWER_TOKEN_<NAME> holds the token named <name>; REVIEWER_TOKEN_<NAME>_SCOPES its
# scopes (comma-separated) when config.toml does not define that token.
NAMED_TOKEN_ENV = "REVIEWER_TOKEN_"
SCOPES_SUFFIX = "_SCOPES"
Scope = Literal["read", "ingest", "approve", "admin"]
# The legacy single token (api_token / REVIEWER_API_TOKEN) is the token named this.
LEGACY_TOKEN_NAME = "api"


class ConfigError(Exception):
    """The configuration is unusable; the message says where and what to write instead."""


class TokenSettings(BaseModel):
    """One ``[reviewer.tokens.<name>]`` table: the token (or where to read it) and its scopes."""

    model_config = ConfigDict(extra="forbid")

    token: str | None = None
    # The environment variable holding the token (default REVIEWER_TOKEN_<NAME>).
    token_env: str | None = None
    scopes: list[Scope] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> TokenSettings:
        if self.token is not None and self.token_env is not None:
            raise ValueError("give token or token_env, not both")
        if self.token is not None and len(self.token) < 16:
            raise ValueError("token must be at least 16 characters (openssl rand -hex 16)")
        return self


class NamedToken(BaseModel):
    """A usable token: its name (the audit actor), its secret value and its scopes."""

    name: str
    value: str
    scopes: frozenset[str]


_TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

# The shortest schedule interval accepted.
MIN_INTERVAL = timedelta(seconds=10)


class ReviewerSettings(BaseModel):
    """The ``[reviewer]`` table."""

    model_config = ConfigDict(extra="forbid")

    store: str = "sqlite:///reviewer.db"
    # For an http(s):// store: the local SQLite file it is mirrored into.
    http_mirror: str | None = None
    # For an http(s):// store: how long to wait for the pipeline and how often to retry.
    http_timeout: Duration = timedelta(seconds=30)
    http_attempts: int = Field(default=5, ge=1, le=20)
    http_retry_budget: int = Field(default=30, ge=0)
    http_max_retry_after: Duration = timedelta(minutes=2)
    http_page_size: int = Field(default=1000, ge=1)
    specs_dir: str = "specs"
    repo_dir: str = "."
    # Schedule: an interval, or a five-field cron expression (cron wins when set).
    interval: Duration = timedelta(minutes=15)
    cron: str | None = None
    timezone: str = "UTC"
    # A run that could not start on time still starts if it is at most this late.
    misfire_grace_minutes: float = Field(default=10, ge=0)
    # Engine limits.
    max_new_proposals_per_cycle: int = Field(default=10, ge=0)
    resolve_after_cycles: int = Field(default=2, ge=1)
    reject_cooldown: Duration = timedelta(days=14)
    # A finding that still fires this long after its filed task was done gets a new proposal.
    reopen_after_done: Duration = timedelta(days=1)
    label_subject_tasks: bool = True
    # Outcomes of filed tasks (reviewer/outcomes.py): once a task completed, its finding
    # must clear within this many cycles and stay clear this long to count as fixed.
    outcome_cycles: int = Field(default=3, ge=1)
    outcome_clear_for: Duration = timedelta(days=7)
    # The breaker: this many rejections of one rule within the window turn its
    # `auto` approval into `manual` until a person resets it (0: never).
    breaker_rejections: int = Field(default=5, ge=0)
    breaker_window: Duration = timedelta(days=7)
    # More new proposals than this of one rule in one cycle become one summary (a burst).
    burst_limit: int = Field(default=5, ge=1)
    templates_dir: str | None = None
    # Controls (pause, hold, throttle, quarantine): how long one lasts once applied, and
    # after how many cycles in a row without its finding it lifts early.
    control_ttl: Duration = timedelta(hours=24)
    control_lift_after_cycles: int = Field(default=2, ge=1)
    # HTTP API of `reviewer run`.
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8787, ge=0, le=65535)
    api_token: str | None = None
    # Deprecated, ignored (kept so old configs load): only an admin-scoped token may
    # name the actor it acts for (X-Reviewer-Actor, "by"); see api.deps.actor_for.
    api_token_sets_actor: bool = False
    # Named, scoped tokens: [reviewer.tokens.<name>] token/token_env and scopes.
    tokens: dict[str, TokenSettings] = Field(default_factory=dict)
    # Whether reads (GET /api/...) need a token with the read scope; otherwise open.
    reads_require_token: bool = False
    # The largest request body the API reads (a JUnit upload, a metrics batch); 413 above.
    api_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # Where people open the review page; notifications link to it.
    public_url: str = "http://127.0.0.1:8787/"

    @field_validator("public_url")
    @classmethod
    def _page_url(cls, value: str) -> str:
        if not re.match(r"https?://[^/\s]+", value):
            raise ValueError(
                "public_url must be an http(s):// address, like https://reviewer.example/"
            )
        return value if value.endswith("/") else value + "/"

    @field_validator("store")
    @classmethod
    def _known_store(cls, url: str) -> str:
        if not url.startswith(STORE_SCHEMES):
            # Only the scheme is echoed: the rest may hold a password.
            scheme = url.split("://", 1)[0] + "://" if "://" in url else "a URL without a scheme"
            raise ValueError(
                f"{scheme} is not a kind of store this reviewer knows; write {STORE_URL_FORMS}"
            )
        return url

    @field_validator("control_ttl")
    @classmethod
    def _positive_ttl(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(
                "must be more than 0s (to turn one rule's controls off, set control_ttl = "
                '"0s" in its [rules.<ID>] table)'
            )
        return value

    @model_validator(mode="after")
    def _check_schedule(self) -> ReviewerSettings:
        # What the daemon would die on at start is refused here, so `config check`
        # (the systemd unit's ExecStartPre) catches it.
        try:
            zone = zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(
                f"timezone {self.timezone!r} is not an IANA time zone, like UTC or Europe/Berlin"
            ) from None
        if self.cron is not None:
            if len(self.cron.split()) != 5:
                raise ValueError(
                    f"cron must have five fields (minute hour day month weekday), got {self.cron!r}"
                )
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(self.cron, timezone=zone)
            except ValueError as exc:
                raise ValueError(f"cron {self.cron!r} is not valid: {exc}") from None
        for name in self.tokens:
            if not _TOKEN_NAME.fullmatch(name):
                raise ValueError(
                    f"tokens.{name}: a token name is letters, digits, '-' and '_' "
                    "(it is the actor in the audit log)"
                )
        if self.api_token is not None and LEGACY_TOKEN_NAME in self.tokens:
            raise ValueError(
                f"tokens.{LEGACY_TOKEN_NAME}: the name is taken by api_token; rename one of them"
            )
        if self.interval < MIN_INTERVAL:
            raise ValueError(
                f"interval must be at least {MIN_INTERVAL.total_seconds():g}s "
                f"(a review is a full pass over the store), got {fmt_duration(self.interval)}"
            )
        return self


class RuleSettings(BaseModel):
    """The keys every ``[rules.<ID>]`` table may set besides the rule's options."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    severity: Severity = Severity.warning
    approval: Approval = Approval.manual
    # How long this rule's controls last ([reviewer] control_ttl when unset); "0s": its
    # findings apply no control, their proposals file the task only.
    control_ttl: Duration | None = None
    # This rule's own [reviewer] burst_limit.
    burst_limit: int | None = Field(default=None, ge=1)


SHARED_RULE_KEYS = frozenset(RuleSettings.model_fields)


class RuleConfig(BaseModel):
    """One rule as configured: shared keys plus its validated options."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    settings: RuleSettings
    options: Any  # the rule module's Options instance


class Config(BaseModel):
    """The whole validated configuration."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    path: Path | None
    base_dir: Path
    reviewer: ReviewerSettings
    rules: dict[str, RuleConfig]
    goals: dict[str, Any] = Field(default_factory=dict)
    experiments: dict[str, Any] = Field(default_factory=dict)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    incidents: IncidentSettings = Field(default_factory=IncidentSettings)

    def goal_settings(self) -> dict[str, Any]:
        """The goals and progress settings of the rule that watches the ``[goals]``
        tables (the store's defaults when no rule does)."""
        for rule_id, module in REGISTRY.items():
            option = next(
                (o for o, t in getattr(module, "CONFIG_TABLES", {}).items() if t == "goals"), None
            )
            if option is not None and rule_id in self.rules:
                options = self.rules[rule_id].options
                return {
                    "goals": getattr(options, option),
                    "running_weight": options.running_weight,
                    "rate_window": options.rate_window,
                    "stalled_after": options.stalled_after,
                }
        return {
            "goals": {},
            "running_weight": RUNNING_WEIGHT,
            "rate_window": RATE_WINDOW,
            "stalled_after": STALLED_AFTER,
        }

    def resolve(self, path: str | None) -> Path | None:
        """A path from the config, relative to the config file's folder."""
        if path is None or path == "":
            return None
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def store_url(self) -> str:
        return resolve_store_url(self.reviewer.store, self.base_dir)

    @property
    def api_token(self) -> str | None:
        return os.environ.get(TOKEN_ENV) or self.reviewer.api_token

    def api_tokens(self) -> list[NamedToken]:
        """Every token the API accepts, read from config and the environment now.

        The legacy ``api_token`` / ``REVIEWER_API_TOKEN`` is the token ``api`` with
        every scope. A ``[reviewer.tokens.<name>]`` token comes from ``token``, the
        variable ``token_env`` names, or ``REVIEWER_TOKEN_<NAME>`` (which wins over
        ``token``, as ``REVIEWER_API_TOKEN`` wins over ``api_token``). A
        ``REVIEWER_TOKEN_<NAME>`` that config does not define takes its scopes from
        ``REVIEWER_TOKEN_<NAME>_SCOPES`` (comma-separated; ``read`` when unset). A
        token without a value is not usable. Raises ``ConfigError`` for a bad scope
        or two tokens with one value (the audit could not tell them apart).
        """
        from store.secrets import register

        found: list[NamedToken] = []
        legacy = self.api_token
        if legacy:
            everything = frozenset(ALL_SCOPES)
            found.append(NamedToken(name=LEGACY_TOKEN_NAME, value=legacy, scopes=everything))
        env_key = {token_env_name(n): n for n in self.reviewer.tokens}
        for name, t in self.reviewer.tokens.items():
            value = os.environ.get(NAMED_TOKEN_ENV + token_env_name(name)) or (
                os.environ.get(t.token_env) if t.token_env else t.token
            )
            if value:
                found.append(NamedToken(name=name, value=value, scopes=frozenset(t.scopes)))
        for key, value in sorted(os.environ.items()):
            if not key.startswith(NAMED_TOKEN_ENV) or key.endswith(SCOPES_SUFFIX) or not value:
                continue
            suffix = key[len(NAMED_TOKEN_ENV) :]
            if suffix in env_key:
                continue
            name = suffix.lower().replace("_", "-")
            if not _TOKEN_NAME.fullmatch(name) or (name == LEGACY_TOKEN_NAME and legacy):
                raise ConfigError(
                    f"${key}: the token name {name!r} is "
                    + ("taken by api_token" if name == LEGACY_TOKEN_NAME else "not usable")
                    + "; name it with letters, digits and '_'"
                )
            raw = os.environ.get(key + SCOPES_SUFFIX, "read")
            scopes = {s.strip() for s in raw.split(",") if s.strip()}
            bad = sorted(scopes - set(ALL_SCOPES))
            if bad or not scopes:
                raise ConfigError(
                    f"${key}{SCOPES_SUFFIX}: unknown scope {bad[0] if bad else raw!r}; "
                    f"known scopes: {', '.join(ALL_SCOPES)}"
                )
            found.append(NamedToken(name=name, value=value, scopes=frozenset(scopes)))
        seen: dict[str, str] = {}
        for named in found:
            register(named.value)
            if named.value in seen:
                raise ConfigError(
                    f"tokens {seen[named.value]!r} and {named.name!r} have the same value; give "
                    "each caller its own token so the audit log can tell them apart"
                )
            seen[named.value] = named.name
        return found

    def enabled_rules(self) -> list[RuleConfig]:
        return [r for r in self.rules.values() if r.settings.enabled]


ALL_SCOPES: tuple[str, ...] = ("read", "ingest", "approve", "admin")


def token_env_name(token_name: str) -> str:
    """The environment suffix of a token name: ``ci-bot`` → ``CI_BOT``."""
    return token_name.upper().replace("-", "_")


def resolve_store_url(url: str, base_dir: Path) -> str:
    """Make a relative ``sqlite:///file.db`` relative to ``base_dir``."""
    if url.startswith("sqlite:///"):
        raw = url[len("sqlite:///") :]
        if raw == ":memory:" or raw.startswith("/"):
            return url
        return "sqlite:///" + str((base_dir / raw).resolve())
    return url


def _where(path: Path | None) -> str:
    return str(path) if path else "built-in defaults"


def _explain(exc: ValidationError, path: Path | None, table: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        got = err.get("input")
        if not loc:
            # A cross-field check (a model validator) has no location of its own; its
            # message opens with the option it is about ("cron '99 * * * *' is ...").
            first = err["msg"].removeprefix("Value error, ").split(" ", 1)[0]
            loc = first if isinstance(got, dict) and first in got else "(table)"
        got_text = "" if isinstance(got, dict) else f" (got {got!r})"
        if err["type"] == "extra_forbidden":
            lines.append(f"{_where(path)}: [{table}] unknown option '{loc}'")
        elif not err["loc"] and loc == "(table)":  # across options: its message names them
            lines.append(f"{_where(path)}: [{table}] {err['msg'].removeprefix('Value error, ')}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{_where(path)}: [{table}] option '{loc}': {msg}{got_text}")
    return "\n".join(lines)


def _notify_settings(raw: dict[str, Any], path: Path | None) -> NotifySettings:
    """``[notify]`` and each ``[notify.receivers.<name>]``, named in messages by its table."""
    receivers = raw.get("receivers", {})
    if not isinstance(receivers, dict):
        raise ConfigError(
            f"{_where(path)}: [notify] receivers must be [notify.receivers.<name>] tables"
        )
    checked: dict[str, Receiver] = {}
    for name, table in receivers.items():
        where = f"notify.receivers.{name}"
        if not isinstance(table, dict):
            raise ConfigError(f"{_where(path)}: [{where}] must be a table")
        try:
            checked[name] = Receiver.model_validate(table)
        except ValidationError as exc:
            raise ConfigError(_explain(exc, path, where)) from None
    try:
        return NotifySettings.model_validate({**raw, "receivers": checked})
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path, "notify")) from None


def find_config_path(explicit: str | None) -> Path | None:
    """The config file to use: ``--config``, then ``$REVIEWER_CONFIG``, then ./config.toml."""
    if explicit:
        p = Path(explicit)
        if not p.exists():
            raise ConfigError(f"{p}: config file not found")
        return p
    env = os.environ.get(CONFIG_ENV)
    if env:
        p = Path(env)
        if not p.exists():
            raise ConfigError(f"{p}: config file not found (from ${CONFIG_ENV})")
        return p
    p = Path("config.toml")
    return p if p.exists() else None


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate a config file (``None``: built-in defaults)."""

    data: dict[str, Any] = {}
    p = Path(path) if path is not None else None
    if p is not None:
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except UnicodeDecodeError as exc:
            line = p.read_bytes()[: exc.start].count(b"\n") + 1
            raise ConfigError(
                f"{p}:{line}: not valid UTF-8 (a config file is UTF-8 text)"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read the config file: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return config_from_dict(data, p, overrides)


def config_from_dict(
    data: dict[str, Any], path: Path | None = None, overrides: dict[str, Any] | None = None
) -> Config:
    """Validate an already-parsed config; ``path`` is only for messages and relative paths."""
    known_tables = {"reviewer", "rules", "goals", "experiments", "notify", "incidents"}
    unknown = sorted(set(data) - known_tables)
    if unknown:
        raise ConfigError(
            f"{_where(path)}: unknown table [{unknown[0]}]; "
            f"known tables: {', '.join(sorted(known_tables))}"
        )
    for name in known_tables:
        if not isinstance(data.get(name, {}), dict):
            raise ConfigError(
                f"{_where(path)}: {name} must be a table, written [{name}], "
                f"not a value (got {type(data[name]).__name__})"
            )
    raw_reviewer = dict(data.get("reviewer", {}))
    raw_reviewer.update(overrides or {})
    try:
        settings = ReviewerSettings.model_validate(raw_reviewer)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path, "reviewer")) from None

    raw_rules = data.get("rules", {})
    if not isinstance(raw_rules, dict):
        raise ConfigError(f"{_where(path)}: [rules] must be a table of [rules.<ID>] tables")
    for rule_id in raw_rules:
        if rule_id not in REGISTRY:
            raise ConfigError(
                f"{_where(path)}: [rules.{rule_id}] is not a known rule; "
                f"known rules: {', '.join(REGISTRY)}"
            )
    rules: dict[str, RuleConfig] = {}
    for rule_id, module in REGISTRY.items():
        table = raw_rules.get(rule_id, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{_where(path)}: [rules.{rule_id}] must be a table")
        shared = {k: v for k, v in table.items() if k in SHARED_RULE_KEYS}
        own = {k: v for k, v in table.items() if k not in SHARED_RULE_KEYS}
        for option, top in getattr(module, "CONFIG_TABLES", {}).items():
            # An option filled from a top-level table (e.g. the goals a rule watches: [goals.<id>]).
            if option in own:
                raise ConfigError(
                    f"{_where(path)}: [rules.{rule_id}] option '{option}': define {option} as "
                    f"[{top}.<id>] tables, not inside the rule's table"
                )
            own[option] = data.get(top, {})
        try:
            rule_settings = RuleSettings.model_validate(
                {**getattr(module, "DEFAULTS", {}), **shared}
            )
            options = module.Options.model_validate(own)
        except ValidationError as exc:
            raise ConfigError(_explain(exc, path, f"rules.{rule_id}")) from None
        rules[rule_id] = RuleConfig(id=rule_id, settings=rule_settings, options=options)

    notify = _notify_settings(data.get("notify", {}), path)
    try:
        incidents = IncidentSettings.model_validate(data.get("incidents", {}))
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path, "incidents")) from None
    base_dir = (path.parent if path is not None else Path.cwd()).resolve()
    config = Config(
        path=path,
        base_dir=base_dir,
        reviewer=settings,
        rules=rules,
        goals=dict(data.get("goals", {})),
        experiments=dict(data.get("experiments", {})),
        notify=notify,
        incidents=incidents,
    )
    templates = config.resolve(settings.templates_dir)
    if templates is not None and not templates.is_dir():
        raise ConfigError(
            f"{_where(path)}: [reviewer] option 'templates_dir': {templates} is not a folder"
        )
    try:  # a bad [experiments] table is refused here, not later
        parse_experiments(config.experiments, _where(path))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    from store.secrets import register

    register(settings.api_token)  # masked in every log line and message from now on
    config.api_tokens()  # registers every token's value; a bad env token is refused here
    return config
