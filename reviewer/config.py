"""Loading and validating ``config.toml``.

``[reviewer]`` holds the engine's settings; ``[rules.<ID>]`` one rule's options
plus the keys every rule shares (``enabled``, ``severity``, ``approval``),
which are split off here, once, so no rule handles them. A bad config raises
``ConfigError`` whose message names the file, the table, the option and what
was expected.
"""

from __future__ import annotations

import os
import tomllib
import zoneinfo
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from reviewer.experiment_settings import parse_experiments
from rules import REGISTRY
from store import Approval, Severity
from store.goals import RATE_WINDOW, RUNNING_WEIGHT
from store.timeutil import Duration, fmt_duration

CONFIG_ENV = "REVIEWER_CONFIG"
TOKEN_ENV = "REVIEWER_API_TOKEN"


class ConfigError(Exception):
    """The configuration is unusable; the message says where and what to write instead."""


# The shortest schedule interval accepted.
MIN_INTERVAL = timedelta(seconds=10)


class ReviewerSettings(BaseModel):
    """The ``[reviewer]`` table."""

    model_config = ConfigDict(extra="forbid")

    store: str = "sqlite:///reviewer.db"
    # For an http(s):// store: the local SQLite file it is mirrored into.
    http_mirror: str | None = None
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
    templates_dir: str | None = None
    # HTTP API of `reviewer run`.
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8787, ge=0, le=65535)
    api_token: str | None = None
    # Whether a holder of the token may name the audit actor with X-Reviewer-Actor
    # (a bot acting for people); otherwise every change is recorded as "api".
    api_token_sets_actor: bool = False
    # The largest request body the API reads (a JUnit upload, a metrics batch); 413 above.
    api_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)

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
                }
        return {"goals": {}, "running_weight": RUNNING_WEIGHT, "rate_window": RATE_WINDOW}

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

    def enabled_rules(self) -> list[RuleConfig]:
        return [r for r in self.rules.values() if r.settings.enabled]


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
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{_where(path)}: [{table}] option '{loc}': {msg}{got_text}")
    return "\n".join(lines)


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
    known_tables = {"reviewer", "rules", "goals", "experiments"}
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

    base_dir = (path.parent if path is not None else Path.cwd()).resolve()
    config = Config(
        path=path,
        base_dir=base_dir,
        reviewer=settings,
        rules=rules,
        goals=dict(data.get("goals", {})),
        experiments=dict(data.get("experiments", {})),
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
    return config
