"""Table definitions and forward migrations, shared by the SQL stores.

The backlog tables (``tasks``, ``task_metrics``, ``test_results``) hold the
pipeline's records in CONTRACT's formats, one column per field, lists and
objects as JSON text, unknown fields in ``extra``. The reviewer's own state
lives in ``reviewer_*`` tables. ``reviewer_meta.schema_version`` says which
migrations have run; each migration is a list of statements applied in one
transaction, never edited once released.
"""

from __future__ import annotations

# Columns of a task record, in CONTRACT order, with the JSON-list fields marked.
TASK_COLUMNS: tuple[str, ...] = (
    "id",
    "title",
    "description",
    "task_type",
    "phase",
    "status",
    "priority",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "attempts",
    "depends_on",
    "goal_id",
    "spec",
    "labels",
    "model",
    "executor",
    "prompt_variant",
    "skill_version",
    "error",
    "files_changed",
    "source",
    "extra",
)
TASK_JSON_COLUMNS = frozenset({"depends_on", "labels", "files_changed", "extra"})

METRIC_COLUMNS: tuple[str, ...] = (
    "task_id",
    "task_type",
    "model",
    "executor",
    "duration_seconds",
    "status",
    "created_at",
    "prompt_variant",
    "skill_version",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "api_calls",
    "error",
    "extra",
)

TEST_RESULT_COLUMNS: tuple[str, ...] = (
    "run_id",
    "test_id",
    "classname",
    "name",
    "commit_sha",
    "branch",
    "outcome",
    "duration_seconds",
    "message",
    "file",
    "ran_at",
)

# One file's line and branch coverage at one commit (Cobertura XML, ``reviewer ingest
# coverage``); a commit's total is the sum over its files.
COVERAGE_COLUMNS: tuple[str, ...] = (
    "commit_sha",
    "branch",
    "file",
    "lines_valid",
    "lines_covered",
    "branches_valid",
    "branches_covered",
    "recorded_at",
)

# Every timestamp column, so adapters know what to normalise.
TIMESTAMP_COLUMNS = {
    "tasks": ("created_at", "updated_at", "started_at", "finished_at"),
    "task_metrics": ("created_at",),
    "test_results": ("ran_at",),
}

_V1: list[str | dict[str, str]] = [
    """
    CREATE TABLE IF NOT EXISTS tasks (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        description TEXT,
        task_type TEXT,
        phase TEXT,
        status TEXT NOT NULL DEFAULT 'pending',
        priority TEXT NOT NULL DEFAULT 'normal',
        created_at TEXT NOT NULL,
        updated_at TEXT,
        started_at TEXT,
        finished_at TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        depends_on TEXT,
        goal_id TEXT,
        spec TEXT,
        labels TEXT,
        model TEXT,
        executor TEXT,
        prompt_variant TEXT,
        skill_version TEXT,
        error TEXT,
        files_changed TEXT,
        source TEXT,
        extra TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status, created_at)",
    "CREATE INDEX IF NOT EXISTS tasks_created ON tasks (created_at)",
    "CREATE INDEX IF NOT EXISTS tasks_type_phase ON tasks (task_type, phase)",
    "CREATE INDEX IF NOT EXISTS tasks_goal ON tasks (goal_id)",
    "CREATE INDEX IF NOT EXISTS tasks_spec ON tasks (spec)",
    """
    CREATE TABLE IF NOT EXISTS task_metrics (
        task_id TEXT NOT NULL,
        task_type TEXT,
        model TEXT,
        executor TEXT,
        duration_seconds REAL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        prompt_variant TEXT,
        skill_version TEXT,
        tokens_in INTEGER,
        tokens_out INTEGER,
        cost_usd REAL,
        api_calls INTEGER,
        error TEXT,
        extra TEXT,
        PRIMARY KEY (task_id, created_at)
    )
    """,
    "CREATE INDEX IF NOT EXISTS task_metrics_created ON task_metrics (created_at)",
    "CREATE INDEX IF NOT EXISTS task_metrics_type ON task_metrics (task_type, created_at)",
    "CREATE INDEX IF NOT EXISTS task_metrics_model ON task_metrics (model, created_at)",
    "CREATE INDEX IF NOT EXISTS task_metrics_executor ON task_metrics (executor, created_at)",
    """
    CREATE TABLE IF NOT EXISTS test_results (
        run_id TEXT NOT NULL,
        test_id TEXT NOT NULL,
        classname TEXT,
        name TEXT,
        commit_sha TEXT NOT NULL,
        branch TEXT,
        outcome TEXT NOT NULL,
        duration_seconds REAL,
        message TEXT,
        file TEXT,
        ran_at TEXT NOT NULL,
        PRIMARY KEY (run_id, test_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS test_results_test ON test_results (test_id, ran_at)",
    "CREATE INDEX IF NOT EXISTS test_results_commit ON test_results (commit_sha, test_id)",
    "CREATE INDEX IF NOT EXISTS test_results_ran ON test_results (ran_at)",
    """
    CREATE TABLE IF NOT EXISTS reviewer_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at TEXT NOT NULL,
        now TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        trigger TEXT NOT NULL,
        findings INTEGER NOT NULL DEFAULT 0,
        new_proposals INTEGER NOT NULL DEFAULT 0,
        held_back INTEGER NOT NULL DEFAULT 0,
        resolved INTEGER NOT NULL DEFAULT 0,
        duration_ms INTEGER,
        errors TEXT NOT NULL DEFAULT '[]'
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS reviewer_findings (
        fingerprint TEXT PRIMARY KEY,
        rule TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        severity TEXT NOT NULL,
        summary TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        times_seen INTEGER NOT NULL DEFAULT 1,
        clear_streak INTEGER NOT NULL DEFAULT 0,
        resolved_at TEXT,
        regressions INTEGER NOT NULL DEFAULT 0,
        silenced_by INTEGER,
        last_run_id INTEGER
    )
    """,
    "CREATE INDEX IF NOT EXISTS reviewer_findings_state ON reviewer_findings (state, rule)",
    """
    CREATE TABLE IF NOT EXISTS reviewer_proposals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        fingerprint TEXT NOT NULL,
        rule TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        severity TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        state TEXT NOT NULL,
        approval TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        run_id INTEGER,
        task_id TEXT UNIQUE,
        decided_by TEXT,
        reason TEXT,
        regression_of INTEGER,
        cooldown_until TEXT
    )
    """,
    # At most one proposal speaks for a fingerprint at a time.
    """
    CREATE UNIQUE INDEX IF NOT EXISTS reviewer_proposals_active
    ON reviewer_proposals (fingerprint) WHERE state IN ('pending', 'approved', 'scheduled')
    """,
    "CREATE INDEX IF NOT EXISTS reviewer_proposals_fp ON reviewer_proposals (fingerprint, state)",
    "CREATE INDEX IF NOT EXISTS reviewer_proposals_state ON reviewer_proposals (state)",
    """
    CREATE TABLE IF NOT EXISTS reviewer_silences (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        rule TEXT NOT NULL,
        subject TEXT NOT NULL,
        until TEXT NOT NULL,
        created_by TEXT NOT NULL,
        comment TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expired_at TEXT
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS reviewer_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        proposal_id INTEGER,
        fingerprint TEXT,
        rule TEXT,
        subject TEXT,
        from_state TEXT,
        to_state TEXT,
        reason TEXT,
        details TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS reviewer_audit_proposal ON reviewer_audit (proposal_id)",
    # Updates the reviewer itself made to backlog tasks, so activity-based rules can
    # tell them from the pipeline's own (the GitHub stale action's lesson).
    """
    CREATE TABLE IF NOT EXISTS reviewer_task_touches (
        task_id TEXT PRIMARY KEY,
        touched_at TEXT NOT NULL,
        previous_updated_at TEXT
    )
    """,
]

# Pipeline metrics, A/B arms and goals (Phases 1-3).
_V_METRICS_GOALS: list[str | dict[str, str]] = [
    # Percentiles walk this index to the k-th duration instead of sorting; the
    # filter columns ride along so a filtered walk never visits the table.
    """
    CREATE INDEX IF NOT EXISTS task_metrics_duration
    ON task_metrics (duration_seconds, created_at, task_type, model, executor)
    """,
    # One filtered percentile walk per tag: seek the tag, then durations in order.
    """
    CREATE INDEX IF NOT EXISTS task_metrics_type_duration
    ON task_metrics (task_type, duration_seconds, created_at)
    """,
    """
    CREATE INDEX IF NOT EXISTS task_metrics_model_duration
    ON task_metrics (model, duration_seconds, created_at)
    """,
    """
    CREATE INDEX IF NOT EXISTS task_metrics_executor_duration
    ON task_metrics (executor, duration_seconds, created_at)
    """,
    # The grouped roll-up of every breakdown reads this index alone, already in
    # group order: no sort and no table visits (SQLite has no INCLUDE columns).
    """
    CREATE INDEX IF NOT EXISTS task_metrics_rollup
    ON task_metrics (task_type, model, executor, status, created_at,
                     duration_seconds, tokens_in, tokens_out, cost_usd, api_calls)
    """,
    "CREATE INDEX IF NOT EXISTS task_metrics_variant ON task_metrics (prompt_variant, created_at)",
    "CREATE INDEX IF NOT EXISTS task_metrics_skill ON task_metrics (skill_version, created_at)",
    # Goals defined over the API (config.toml's [goals] are read from the config).
    """
    CREATE TABLE IF NOT EXISTS reviewer_goals (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        target INTEGER,
        deadline TEXT,
        label TEXT,
        spec TEXT,
        task_type TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        created_by TEXT NOT NULL
    )
    """,
]

# flaky-tests on big suites: find the few tests worth a look (a failure in the
# recent window, a skip in the holdout window) from this index alone, then read
# only their histories, instead of every run of every test in the window.
_V_TEST_INDEXES: list[str | dict[str, str]] = [
    "CREATE INDEX IF NOT EXISTS test_results_outcome ON test_results (outcome, ran_at, test_id)",
]

# Pipelines may write the backlog tables directly, with any ISO 8601 form
# ("2026-03-01 10:00:00", "...T10:00:00.5+02:00") or Unix seconds. Every query
# compares timestamps as text, so the database itself brings them to the one
# stored form on insert and update. A value that does not parse is left alone.
_CANONICAL = "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z'"


def _sqlite_norm(col: str) -> str:
    return (
        f"CASE WHEN {col} IS NULL OR {col} GLOB {_CANONICAL} THEN {col}"
        # Unix seconds: a TEXT column stores a written number as its digits; from
        # 1e11 on (year 5138 in seconds) it is Unix milliseconds. Out of range: kept.
        f" WHEN {col} NOT GLOB '*[^0-9.]*'"
        f" THEN COALESCE(strftime('%Y-%m-%dT%H:%M:%SZ', CASE WHEN CAST({col} AS REAL) >= 1e11"
        f" THEN CAST({col} AS REAL) / 1000 ELSE {col} END, 'unixepoch'), {col})"
        f" ELSE COALESCE(strftime('%Y-%m-%dT%H:%M:%SZ', {col}), {col}) END"
    )


def _sqlite_ts_triggers(table: str, cols: tuple[str, ...]) -> list[str | dict[str, str]]:
    needs = " OR ".join(
        f"(NEW.{c} IS NOT NULL AND NEW.{c} NOT GLOB {_CANONICAL}"
        f" AND {_sqlite_norm('NEW.' + c)} IS NOT NEW.{c})"
        for c in cols
    )
    sets = ", ".join(f"{c} = {_sqlite_norm(c)}" for c in cols)
    out: list[str | dict[str, str]] = []
    for event in ("INSERT", f"UPDATE OF {', '.join(cols)}"):
        name = f"{table}_normalise_ts_{event.split()[0].lower()}"
        out.append(
            {
                "sqlite": f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {event} ON {table}"
                f" WHEN {needs} BEGIN UPDATE {table} SET {sets} WHERE rowid = NEW.rowid; END",
            }
        )
    return out


_PG_NORM_FUNCTION = r"""
CREATE OR REPLACE FUNCTION reviewer_norm_ts(v text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
    IF v IS NULL OR v ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$' THEN
        RETURN v;
    ELSIF v ~ '^\d+(\.\d+)?$' THEN
        -- Unix seconds, or from 1e11 on (year 5138 in seconds) Unix milliseconds.
        RETURN to_char(to_timestamp(CASE WHEN v::double precision >= 1e11
                                         THEN v::double precision / 1000
                                         ELSE v::double precision END) AT TIME ZONE 'UTC',
                       'YYYY-MM-DD"T"HH24:MI:SS"Z"');
    ELSIF v ~ '(Z|z|[+-]\d\d(:?\d\d)?)$' THEN
        RETURN to_char(v::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"');
    ELSE  -- naive means UTC
        RETURN to_char(v::timestamp, 'YYYY-MM-DD"T"HH24:MI:SS"Z"');
    END IF;
EXCEPTION WHEN others THEN
    RETURN v;
END
$fn$
"""


def _pg_ts_trigger(table: str, cols: tuple[str, ...]) -> list[str | dict[str, str]]:
    body = "; ".join(f"NEW.{c} := reviewer_norm_ts(NEW.{c})" for c in cols)
    return [
        {
            "postgresql": f"""
            CREATE OR REPLACE FUNCTION {table}_normalise_ts() RETURNS trigger
            LANGUAGE plpgsql AS $fn$ BEGIN {body}; RETURN NEW; END $fn$
            """
        },
        {"postgresql": f"DROP TRIGGER IF EXISTS {table}_normalise_ts ON {table}"},
        {
            "postgresql": f"CREATE TRIGGER {table}_normalise_ts BEFORE INSERT OR UPDATE ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION {table}_normalise_ts()"
        },
    ]


_V_TIMESTAMPS: list[str | dict[str, str]] = [{"postgresql": _PG_NORM_FUNCTION}]
for _table, _cols in TIMESTAMP_COLUMNS.items():
    _V_TIMESTAMPS += _sqlite_ts_triggers(_table, _cols) + _pg_ts_trigger(_table, _cols)

# Coverage reports (test-health), with the same timestamp normalisation as the
# other backlog tables for pipelines that write the table directly.
_V_COVERAGE: list[str | dict[str, str]] = [
    """
    CREATE TABLE IF NOT EXISTS coverage (
        commit_sha TEXT NOT NULL,
        branch TEXT,
        file TEXT NOT NULL,
        lines_valid INTEGER,
        lines_covered INTEGER,
        branches_valid INTEGER,
        branches_covered INTEGER,
        recorded_at TEXT NOT NULL,
        PRIMARY KEY (commit_sha, file)
    )
    """,
    "CREATE INDEX IF NOT EXISTS coverage_recorded ON coverage (recorded_at, branch, commit_sha)",
    *_sqlite_ts_triggers("coverage", ("recorded_at",)),
    *_pg_ts_trigger("coverage", ("recorded_at",)),
]

# Scale (issue 13). stale-queue's starved check lists a waiting task's first passers
# in start order: this index on the start instant (a finished task that never
# recorded one started by its finish) lets it stop after a few instead of sorting
# every task started since. The expression is _q_tasks._STARTED (the same tree, so
# both databases match it to the query).
_V_SCALE: list[str | dict[str, str]] = [
    """
    CREATE INDEX IF NOT EXISTS tasks_started ON tasks (
        (CASE WHEN started_at IS NOT NULL THEN started_at
              WHEN status IN ('completed', 'failed') THEN finished_at END))
    """,
    # A task's stored status is not yet true at `now` when these are after it: with
    # the status index they find the rows whose as-of state can be pending or
    # running (BacklogView.may_be) without rebuilding every row's state.
    """
    CREATE INDEX IF NOT EXISTS tasks_asof_started
    ON tasks ((COALESCE(started_at, updated_at, created_at)))
    """,
    """
    CREATE INDEX IF NOT EXISTS tasks_asof_finished
    ON tasks ((COALESCE(finished_at, updated_at, created_at)))
    """,
]

# Unix milliseconds written directly were turned into NULL: the triggers again,
# reading them (the function is replaced in place on PostgreSQL).
_V_TS_MILLIS: list[str | dict[str, str]] = [{"postgresql": _PG_NORM_FUNCTION}]
for _table, _cols in [*TIMESTAMP_COLUMNS.items(), ("coverage", ("recorded_at",))]:
    for _event in ("insert", "update"):
        _V_TS_MILLIS.append({"sqlite": f"DROP TRIGGER IF EXISTS {_table}_normalise_ts_{_event}"})
    _V_TS_MILLIS += _sqlite_ts_triggers(_table, _cols)

# How many pipeline records a review found dated after the present (a wrong clock
# or time zone in the pipeline): counted at review time, shown by `runs`.
_V_RUN_FUTURE: list[str | dict[str, str]] = [
    "ALTER TABLE reviewer_runs ADD COLUMN future_records INTEGER NOT NULL DEFAULT 0",
]

# Notifications (issue 12): each cycle's events (audit rows and failed runs since the
# last batch) form one batch; each receiver's message of a batch waits in the outbox
# until it is sent, or dropped after [notify] max_attempts failed cycles.
_V_NOTIFY: list[str | dict[str, str]] = [
    """
    CREATE TABLE IF NOT EXISTS reviewer_notify_batches (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        run_id INTEGER,
        after_audit_id INTEGER NOT NULL,
        last_audit_id INTEGER NOT NULL,
        after_run_id INTEGER NOT NULL,
        last_run_id INTEGER NOT NULL,
        UNIQUE (after_audit_id, after_run_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS reviewer_notify_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        batch_id INTEGER NOT NULL,
        receiver TEXT NOT NULL,
        events INTEGER NOT NULL,
        payload TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        status TEXT NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        sent_at TEXT,
        last_error TEXT,
        UNIQUE (batch_id, receiver)
    )
    """,
    "CREATE INDEX IF NOT EXISTS reviewer_notify_outbox_status"
    " ON reviewer_notify_outbox (status, receiver, id)",
]

# The audit trail filtered by time (`reviewer audit --since`, GET /api/audit?since=).
_V_AUDIT_AT: list[str | dict[str, str]] = [
    "CREATE INDEX IF NOT EXISTS reviewer_audit_at ON reviewer_audit (at)",
]

# Controls (issue 12): what the pipeline's runner obeys; a pipeline-facing table like
# `tasks`, read by runners directly (README, "Controls: what the pipeline obeys"). Active:
# lifted_at IS NULL AND expires_at > now.
_V_CONTROLS: list[str | dict[str, str]] = [
    """
    CREATE TABLE IF NOT EXISTS controls (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        tasks_per_hour INTEGER,
        usd_per_day REAL,
        reason TEXT NOT NULL,
        fingerprint TEXT,
        rule TEXT,
        proposal_id INTEGER,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        lifted_at TEXT,
        lifted_by TEXT,
        lift_reason TEXT,
        clear_cycles INTEGER NOT NULL DEFAULT 0
    )
    """,
    "CREATE INDEX IF NOT EXISTS controls_open ON controls (expires_at) WHERE lifted_at IS NULL",
    "CREATE INDEX IF NOT EXISTS controls_fingerprint ON controls (fingerprint)",
]

# Did the reviewer's fixes help (issue 11): a scheduled proposal's outcome once its
# task has ended (fixed | not-fixed | regressed | abandoned), and the breaker that
# turns a much-rejected rule's `auto` approval back to `manual` until a person resets it.
_V_OUTCOMES: list[str | dict[str, str]] = [
    "ALTER TABLE reviewer_proposals ADD COLUMN task_status TEXT",
    "ALTER TABLE reviewer_proposals ADD COLUMN task_ended_at TEXT",
    "ALTER TABLE reviewer_proposals ADD COLUMN outcome TEXT",
    "ALTER TABLE reviewer_proposals ADD COLUMN outcome_at TEXT",
    "CREATE INDEX IF NOT EXISTS reviewer_proposals_outcome ON reviewer_proposals (outcome, rule)",
    "CREATE INDEX IF NOT EXISTS reviewer_audit_action ON reviewer_audit (action, rule, at)",
    # Outcomes count the review cycles since a task ended.
    "CREATE INDEX IF NOT EXISTS reviewer_runs_now ON reviewer_runs (now)",
    """
    CREATE TABLE IF NOT EXISTS reviewer_breakers (
        rule TEXT PRIMARY KEY,
        tripped_at TEXT,
        rejections INTEGER NOT NULL DEFAULT 0,
        reason TEXT,
        reset_at TEXT,
        reset_by TEXT
    )
    """,
]

# Incidents and bursts (issue 11): findings grouped behind one cause (an incident,
# keyed by a scope like executor:NAME) or one rule's flood in a cycle (a burst,
# keyed rule:ID), each with one proposal. A member finding points at its open group.
_V_INCIDENTS: list[str | dict[str, str]] = [
    """
    CREATE TABLE IF NOT EXISTS reviewer_incidents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        state TEXT NOT NULL,
        cause TEXT,
        members TEXT NOT NULL,
        payload TEXT NOT NULL,
        opened_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        resolved_at TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS reviewer_incidents_state ON reviewer_incidents (state, kind, key)",
    "CREATE INDEX IF NOT EXISTS reviewer_incidents_print ON reviewer_incidents (fingerprint)",
    "ALTER TABLE reviewer_findings ADD COLUMN incident_id INTEGER",
]

# Replicas on PostgreSQL: the scheduled instant (tick) a run was the cycle of, unique so
# no tick runs twice, and which process ran it (host:pid).
_V_RUN_TICK: list[str | dict[str, str]] = [
    "ALTER TABLE reviewer_runs ADD COLUMN tick TEXT",
    "ALTER TABLE reviewer_runs ADD COLUMN runner TEXT",
    "CREATE UNIQUE INDEX IF NOT EXISTS reviewer_runs_tick ON reviewer_runs (tick)",
]


# Direct SQL writers (issue 9): the SQLite triggers also read a lowercase t/z, and
# refuse negative Unix seconds (SQLite would read '-5' as a Julian day, PostgreSQL's
# function keeps it as it is); rows left unreadable are skipped and counted by
# reviews (store._valid), shown as reviewer_runs.skipped_records.
def _sqlite_norm_v2(col: str) -> str:
    return (
        f"CASE WHEN {col} IS NULL OR {col} GLOB {_CANONICAL} THEN {col}"
        f" WHEN {col} NOT GLOB '*[^0-9.]*'"
        f" THEN COALESCE(strftime('%Y-%m-%dT%H:%M:%SZ', CASE WHEN CAST({col} AS REAL) >= 1e11"
        f" THEN CAST({col} AS REAL) / 1000 ELSE {col} END, 'unixepoch'), {col})"
        f" ELSE COALESCE(strftime('%Y-%m-%dT%H:%M:%SZ', upper({col})), {col}) END"
    )


def _sqlite_ts_triggers_v2(table: str, cols: tuple[str, ...]) -> list[str | dict[str, str]]:
    needs = " OR ".join(f"(NEW.{c} IS NOT NULL AND NEW.{c} NOT GLOB {_CANONICAL})" for c in cols)
    refuse = "".join(
        f" SELECT RAISE(ABORT, '{table}.{c}: negative Unix seconds are no time; write"
        " ISO 8601 UTC (2026-03-01T12:00:00Z) or Unix seconds since 1970')"
        f" WHERE NEW.{c} GLOB '-[0-9]*' AND substr(NEW.{c}, 2) NOT GLOB '*[^0-9.]*';"
        for c in cols
    )
    sets = ", ".join(f"{c} = {_sqlite_norm_v2(c)}" for c in cols)
    out: list[str | dict[str, str]] = []
    for event in ("INSERT", f"UPDATE OF {', '.join(cols)}"):
        name = f"{table}_normalise_ts_{event.split()[0].lower()}"
        out.append({"sqlite": f"DROP TRIGGER IF EXISTS {name}"})
        out.append(
            {
                "sqlite": f"CREATE TRIGGER {name} AFTER {event} ON {table} WHEN {needs}"
                f" BEGIN{refuse} UPDATE {table} SET {sets} WHERE rowid = NEW.rowid; END",
            }
        )
    return out


_V_READABLE: list[str | dict[str, str]] = [
    "ALTER TABLE reviewer_runs ADD COLUMN skipped_records INTEGER NOT NULL DEFAULT 0",
]
for _table, _cols in [*TIMESTAMP_COLUMNS.items(), ("coverage", ("recorded_at",))]:
    _V_READABLE += _sqlite_ts_triggers_v2(_table, _cols)

# Ingest speed (issue 13): on PostgreSQL the timestamp triggers run only for a row
# with a timestamp not yet in the stored form (what reviewer ingest writes, and most
# direct writers, skip the function call); same results, as the function keeps such
# values as they are.
_PG_CANONICAL = r"'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$'"
_V_INGEST_SPEED: list[str | dict[str, str]] = []
for _table, _cols in [*TIMESTAMP_COLUMNS.items(), ("coverage", ("recorded_at",))]:
    _V_INGEST_SPEED += [
        {"postgresql": f"DROP TRIGGER IF EXISTS {_table}_normalise_ts ON {_table}"},
        {
            "postgresql": f"CREATE TRIGGER {_table}_normalise_ts BEFORE INSERT OR UPDATE"
            f" ON {_table} FOR EACH ROW WHEN ("
            + " OR ".join(f"NEW.{c} !~ {_PG_CANONICAL}" for c in _cols)
            + f") EXECUTE FUNCTION {_table}_normalise_ts()"
        },
    ]

# Forward migrations: MIGRATIONS[i] takes the schema from version i to i + 1.
# A statement is SQLite-flavoured DDL that each dialect translates, or a
# {dialect: statement} mapping for what only one database needs.
# The review page: a finding's history and the audit filters read the audit log by these.
_V_PAGE_AUDIT: list[str | dict[str, str]] = [
    "CREATE INDEX IF NOT EXISTS reviewer_audit_fingerprint ON reviewer_audit (fingerprint, id)",
    "CREATE INDEX IF NOT EXISTS reviewer_audit_actor ON reviewer_audit (actor, id)",
]

MIGRATIONS: list[list[str | dict[str, str]]] = [
    _V1,
    _V_METRICS_GOALS,
    _V_TEST_INDEXES,
    _V_TIMESTAMPS,
    _V_COVERAGE,
    _V_SCALE,
    _V_TS_MILLIS,
    _V_RUN_FUTURE,
    _V_NOTIFY,
    _V_AUDIT_AT,
    _V_CONTROLS,
    _V_OUTCOMES,
    _V_INCIDENTS,
    _V_PAGE_AUDIT,
    _V_RUN_TICK,
    _V_READABLE,
    _V_INGEST_SPEED,
]
SCHEMA_VERSION = len(MIGRATIONS)
