"""Property-based tests (hypothesis) for every input path (issue 9).

Each generated input gives either a stored record or a clear message naming
the file, line and field (an HTTP 422 naming the field): never a traceback,
never a 500, and the good records beside a bad one are always kept.

The default run is small (``FUZZ_EXAMPLES``, 25 per path); set
``REVIEWER_FUZZ_EXAMPLES=500`` for a heavy run.
"""

from __future__ import annotations

import json
import math
import os
import string
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reviewer.api import create_app
from reviewer.app import App
from reviewer.cli import cli
from reviewer.config import ConfigError, config_from_dict
from reviewer.ingest import ingest_jsonl, ingest_junit
from reviewer.ingest_coverage import ingest_coverage
from store.sqlite import SQLiteStore
from tests.support import make_config

EXAMPLES = int(os.environ.get("REVIEWER_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
NOW = "2026-03-10T00:00:00Z"

# -- hostile values ---------------------------------------------------------------------
EDGE_INTS = st.sampled_from([0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 10**20])
EDGE_FLOATS = st.sampled_from(
    [0.0, -0.0, -1.5, 1e308, 1e-320, float("inf"), float("-inf"), float("nan")]
)
EDGE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "evil'; touch PWNED; echo '",
        "\ud7ff\ue000",
        "x" * 5000,
        "2026-03-01T12:00:00Z",
        "9999-12-31T23:59:59-05:00",
        "0001-01-01T00:00:00+05:00",
        "0999-01-01T00:00:00Z",
        "2026-03-01t12:00:00z",
        "2026-03-01T12:00:00+0200",
        "Sun, 01 Mar 2026 12:00:00 +0000",
        "1772366400000",
        "2026-02-30T00:00:00Z",
        "completed",
        "failed",
    ]
)
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    EDGE_INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    EDGE_FLOATS,
    st.text(max_size=30),
    EDGE_TEXT,
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
TASK_FIELDS = [
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
    "labels",
    "goal_id",
    "spec",
    "model",
    "executor",
    "error",
    "files_changed",
]
METRIC_FIELDS = [
    "task_id",
    "task_type",
    "model",
    "executor",
    "duration_seconds",
    "status",
    "created_at",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "api_calls",
    "prompt_variant",
    "error",
]


def _record(fields: list[str], base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from([*fields, "extra_field"]), VALUE, max_size=6).map(
        lambda over: {**base, **over}
    )


GOOD_TASK = {"id": "good", "title": "kept", "created_at": "2026-03-01T00:00:00Z"}
GOOD_METRIC = {
    "task_id": "good",
    "duration_seconds": 1.0,
    "status": "completed",
    "created_at": "2026-03-01T00:00:00Z",
}
CASES = {
    "tasks": (TASK_FIELDS, {"id": "x", "title": "t"}, GOOD_TASK, "SELECT id FROM tasks"),
    "metrics": (
        METRIC_FIELDS,
        {"task_id": "x", "duration_seconds": 2.0, "status": "failed", "created_at": NOW},
        GOOD_METRIC,
        "SELECT task_id AS id FROM task_metrics",
    ),
}


def _line(record: dict[str, Any]) -> bytes:
    try:
        return json.dumps(record, allow_nan=True).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        return b"{not json"


def _check_messages(messages: list[str], path: Path) -> None:
    for m in messages:
        assert m.startswith(f"{path}:"), m
        assert "Traceback" not in m


@pytest.mark.parametrize("kind", ["tasks", "metrics"])
@FUZZ
@given(data=st.data())
def test_jsonl_records(kind: str, data: st.DataObject) -> None:
    fields, base, good, query = CASES[kind]
    bad = data.draw(st.lists(_record(fields, base), min_size=1, max_size=3))
    junk = data.draw(st.lists(st.binary(max_size=20), max_size=2))
    lines = [_line(good), *(_line(r) for r in bad), *junk, _line({**good, **{fields[0]: "good2"}})]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{kind}.jsonl"
        path.write_bytes(b"\n".join(x.replace(b"\n", b" ") for x in lines) + b"\n")
        store = SQLiteStore(":memory:")
        report = ingest_jsonl(store, path, kind, now=NOW)
        ids = {r["id"] for r in store.query(query)}
        store.close()
    assert {"good", "good2"} <= ids  # the good part is kept
    _check_messages(report.rejected, path)
    for m in report.rejected:  # named by line, and by field when it was valid JSON
        assert m.split(":")[1].isdigit(), m


XML_ATTR = st.one_of(st.text(alphabet=string.printable, max_size=12), EDGE_TEXT)


@FUZZ
@given(
    hits=XML_ATTR,
    number=XML_ATTR,
    filename=XML_ATTR,
    stamp=XML_ATTR,
    branch=XML_ATTR,
    raw=st.binary(max_size=60),
)
def test_cobertura_xml(
    hits: str, number: str, filename: str, stamp: str, branch: str, raw: bytes
) -> None:
    from xml.sax.saxutils import quoteattr

    def q(s: str) -> str:
        return quoteattr("".join(c for c in s if c in string.printable and c not in "\x0b\x0c"))

    doc = (
        f"<coverage timestamp={q(stamp)}><packages><package name='p'><classes>"
        "<class name='good' filename='app/good.py'><lines>"
        "<line number='1' hits='1'/><line number='2' hits='0'/></lines></class>"
        f"<class name='hostile' filename={q(filename)}><lines>"
        f"<line number={q(number)} hits={q(hits)} branch={q(branch)}/></lines></class>"
        "</classes></package></packages></coverage>"
    )
    with tempfile.TemporaryDirectory() as tmp:
        good, junk = Path(tmp) / "cov.xml", Path(tmp) / "junk.xml"
        good.write_text(doc)
        junk.write_bytes(raw)
        store = SQLiteStore(":memory:")
        report = ingest_coverage(store, good, commit="c", now=NOW)
        junk_report = ingest_coverage(store, junk, commit="d", now=NOW)
        rows = store.query("SELECT * FROM coverage WHERE commit_sha = 'c'")
        store.close()
    files = {r["file"]: r for r in rows}
    assert "app/good.py" in files  # the good class is kept whatever its neighbour holds
    for r in rows:
        for col in ("lines_valid", "lines_covered", "branches_valid", "branches_covered"):
            assert 0 <= r[col] < 2**63
        assert r["lines_covered"] <= r["lines_valid"]
        assert "1970" <= r["recorded_at"][:4] <= "9999"
    for m in report.rejected:
        assert str(good) in m
    for m in junk_report.rejected:
        assert str(junk) in m


@FUZZ
@given(
    time=XML_ATTR,
    stamp=XML_ATTR,
    name=XML_ATTR,
    outcome=st.sampled_from(
        ["", "<failure message='m'/>", "<skipped/>", "<error/>", "<rerunFailure/>"]
    ),
    raw=st.binary(max_size=60),
)
def test_junit_xml(time: str, stamp: str, name: str, outcome: str, raw: bytes) -> None:
    from xml.sax.saxutils import quoteattr

    def q(s: str) -> str:
        return quoteattr("".join(c for c in s if c in string.printable and c not in "\x0b\x0c"))

    doc = (
        f"<testsuites><testsuite name='s' timestamp={q(stamp)}>"
        f"<testcase classname='c' name={q(name)} time={q(time)}>{outcome}</testcase>"
        "</testsuite></testsuites>"
    )
    with tempfile.TemporaryDirectory() as tmp:
        good, junk = Path(tmp) / "good.xml", Path(tmp) / "junk.xml"
        good.write_text(doc)
        junk.write_bytes(raw)
        store = SQLiteStore(":memory:")
        report = ingest_junit(store, [good, junk], run_id="r", commit="c", now=NOW)
        rows = store.query("SELECT duration_seconds, ran_at FROM test_results")
        store.close()
    assert report.stored >= 1 and rows  # the well-formed file is stored
    for row in rows:
        d = row["duration_seconds"]
        assert d is None or (math.isfinite(d) and d >= 0)
        assert "1970" <= row["ran_at"][:4] <= "9999"
    for m in report.rejected:
        assert str(junk) in m


@FUZZ
@given(
    text=st.text(max_size=400)
    | st.lists(
        st.sampled_from(
            [
                "# T",
                "## Files",
                "- `a/b.py`",
                "```",
                "## Acceptance",
                "- [ ] x",
                "<!-- baseline: x -->",
                "\x00",
                "## " + "x" * 300,
                "`../../etc/passwd`",
            ]
        ),
        max_size=12,
    ).map("\n".join)
)
def test_spec_markdown(text: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    from rules import REGISTRY
    from rules.spec_drift import Options
    from store.timeutil import parse_ts
    from tests.support import make_store

    tmp = tmp_path_factory.mktemp("spec")
    store = make_store(
        tmp,
        specs={"s.md": text},
        repo={"a/b.py": "x"},
        tasks=[{"id": "t", "title": "t", "spec": "s.md", "created_at": NOW}],
    )
    findings = list(REGISTRY["spec-drift"].check(Options(), store.view(parse_ts(NOW))))
    store.close()
    for f in findings:
        assert "inf" not in json.dumps(f.evidence).lower().replace("info", "")


REVIEWER_KEYS = [
    "store",
    "interval",
    "cron",
    "timezone",
    "misfire_grace_minutes",
    "max_new_proposals_per_cycle",
    "resolve_after_cycles",
    "reject_cooldown",
    "templates_dir",
    "api_port",
    "api_token",
    "api_max_body_bytes",
    "specs_dir",
]


@FUZZ
@given(
    reviewer=st.dictionaries(st.sampled_from(REVIEWER_KEYS), VALUE, max_size=4),
    tables=st.dictionaries(
        st.sampled_from(["reviewer", "rules", "goals", "experiments", "bogus"]), VALUE, max_size=2
    ),
    rule=st.dictionaries(
        st.sampled_from(["enabled", "severity", "approval", "max_age"]), VALUE, max_size=3
    ),
)
def test_config_toml(
    reviewer: dict[str, Any], tables: dict[str, Any], rule: dict[str, Any]
) -> None:
    data: dict[str, Any] = {**tables}
    if isinstance(data.get("reviewer"), dict) or "reviewer" not in data:
        data["reviewer"] = {"store": "sqlite:///:memory:", **reviewer}
    data.setdefault("rules", {"stale-queue": rule})
    try:
        config_from_dict(data, None)
    except ConfigError as exc:
        assert str(exc) and "Traceback" not in str(exc)


@FUZZ
@given(raw=st.binary(max_size=80))
def test_config_file_bytes(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config.toml"
        cfg.write_bytes(raw)
        r = CliRunner().invoke(cli, ["--config", str(cfg), "config", "check"])
    assert r.exit_code in (0, 2), r.output
    assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit), repr(
        r.exception
    )


# -- the command line ---------------------------------------------------------------------
ARG = st.one_of(
    EDGE_TEXT,
    st.text(max_size=10),
    EDGE_INTS.map(str),
    st.sampled_from(
        [
            "--json",
            "--limit",
            "--now",
            "--state",
            "--rule",
            "--since",
            "--until",
            "-1",
            "0",
            "1e999",
            "--dry-run",
            "--by",
            "--reason",
            "--subject",
            "--until",
            "--comment",
        ]
    ),
)
COMMANDS = [
    ["runs", "list"],
    ["proposals", "list"],
    ["proposals", "show"],
    ["proposals", "approve"],
    ["proposals", "reject"],
    ["findings", "list"],
    ["metrics"],
    ["goals"],
    ["silence", "add"],
    ["silence", "list"],
    ["silence", "expire"],
    ["review", "--once", "--dry-run"],
    ["ab"],
    ["rules", "show"],
    ["ingest", "tasks"],
    ["ingest", "junit"],
    ["backtest"],
]


@pytest.fixture(scope="module")
def cli_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cli")
    db = tmp / "s.db"
    SQLiteStore(db).close()
    cfg = tmp / "config.toml"
    cfg.write_text(f'[reviewer]\nstore = "sqlite:///{db}"\n')
    return cfg


@FUZZ
@given(command=st.sampled_from(COMMANDS), args=st.lists(ARG, max_size=4))
def test_cli_arguments(cli_config: Path, command: list[str], args: list[str]) -> None:
    if any("\x00" in a for a in args):
        args = [a.replace("\x00", "") for a in args]  # argv cannot hold a NUL
    r = CliRunner().invoke(cli, ["--config", str(cli_config), *command, *args])
    assert r.exit_code in (0, 1, 2), (command, args, r.output)
    assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit), (
        command,
        args,
        repr(r.exception),
    )
    assert "Traceback" not in r.output


# -- the HTTP API -------------------------------------------------------------------------
AUTH = {"Authorization": "Bearer tok"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("api")
    cfg = make_config(
        {
            "reviewer": {
                "store": f"sqlite:///{tmp / 'a.db'}",
                "api_token": "tok",
                "api_max_body_bytes": 65536,
            }
        }
    )
    app = App.from_config(cfg)
    client = TestClient(create_app(app), raise_server_exceptions=False)
    yield client
    app.close()


def _ok(r: Any) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:500])
    if r.status_code == 422:
        body = r.json()
        assert body.get("detail") or body.get("errors"), r.text


QUERY = st.dictionaries(
    st.sampled_from(
        [
            "since",
            "until",
            "task_type",
            "model",
            "executor",
            "state",
            "rule",
            "limit",
            "all",
            "by",
            "control",
            "experiment",
            "run_id",
            "commit",
        ]
    ),
    st.one_of(EDGE_TEXT, st.text(max_size=10), EDGE_INTS.map(str)).map(
        lambda s: s.replace("\x00", "")
    ),
    max_size=4,
)
GETS = [
    "/api/agent/metrics",
    "/api/findings",
    "/api/proposals",
    "/api/runs",
    "/api/silences",
    "/api/experiments",
    "/api/goals",
    "/",
    "/healthz",
]


@FUZZ
@given(path=st.sampled_from(GETS), query=QUERY)
def test_api_queries(api: TestClient, path: str, query: dict[str, str]) -> None:
    _ok(api.get(path, params=query))


@FUZZ
@given(
    pid=st.one_of(EDGE_INTS, st.integers()).map(str) | EDGE_TEXT.filter(lambda s: "/" not in s),
    verb=st.sampled_from(["get", "approve", "reject", "expire"]),
)
def test_api_path_ids(api: TestClient, pid: str, verb: str) -> None:
    from urllib.parse import quote

    pid = quote(pid, safe="") or "0"
    if verb == "get":
        _ok(api.get(f"/api/proposals/{pid}"))
    elif verb == "expire":
        _ok(api.post(f"/api/silences/{pid}/expire", headers=AUTH))
    else:
        _ok(api.post(f"/api/proposals/{pid}/{verb}", headers=AUTH, json={"by": "x"}))


SILENCE = {"rule": "stale-queue", "subject": "x", "until": "2999-01-01T00:00:00Z", "comment": "c"}


@FUZZ
@given(
    target=st.sampled_from(["metrics", "goals", "silences", "decision"]),
    payload=st.one_of(
        _record(METRIC_FIELDS, GOOD_METRIC),
        st.lists(_record(METRIC_FIELDS, GOOD_METRIC), max_size=3),
        st.dictionaries(
            st.sampled_from(["id", "title", "target", "deadline", "label"]), VALUE, max_size=4
        ).map(lambda d: {"id": "g1", "title": "t", **d}),
        st.dictionaries(st.sampled_from(list(SILENCE)), VALUE, max_size=3).map(
            lambda d: {**SILENCE, **d}
        ),
        VALUE,
    ),
)
def test_api_payloads(api: TestClient, target: str, payload: Any) -> None:
    body = json.dumps(payload, allow_nan=True).encode("utf-8", "surrogatepass")
    headers = {**AUTH, "content-type": "application/json"}
    path = {
        "metrics": "/api/agent/metrics",
        "goals": "/api/goals",
        "silences": "/api/silences",
        "decision": "/api/proposals/1/approve",
    }[target]
    _ok(api.post(path, content=body, headers=headers))


@FUZZ
@given(body=st.binary(max_size=200), query=QUERY)
def test_api_test_results_upload(api: TestClient, body: bytes, query: dict[str, str]) -> None:
    _ok(
        api.post(
            "/api/test-results",
            params={"run_id": "r", "commit": "c", **query},
            content=body,
            headers=AUTH,
        )
    )


def test_api_deep_json_is_a_client_error(api: TestClient) -> None:
    body = b"[" * 50000 + b"]" * 50000
    r = api.post(
        "/api/agent/metrics", content=body, headers={**AUTH, "content-type": "application/json"}
    )
    assert 400 <= r.status_code < 500
