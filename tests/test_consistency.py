"""Say the same thing everywhere: the command line and the API agree, and both are strict."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from reviewer.api import create_app
from reviewer.app import App
from reviewer.cli import cli
from reviewer.cli.proposals import STATES
from reviewer.config import load_config
from store import ProposalState
from store.goals import GoalDef, goal_status
from store.timeutil import parse_ts
from tests.support import make_config, task_rows

TOKEN = "consistency-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = "2026-03-10T00:00:00Z"
TASKS = [
    {"id": "t1", "title": "One", "priority": "high", "created_at": "2026-03-01T00:00:00Z"},
    {"id": "t2", "title": "Two", "priority": "high", "created_at": "2026-03-01T00:00:00Z"},
]


def run(args: list[str], cwd: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(cwd / "config.toml"), *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A config with two pending proposals in its store."""
    (tmp_path / "config.toml").write_text(
        '[reviewer]\nstore = "sqlite:///pipeline.db"\n'
        '[goals.g1]\ntitle = "Ship"\ndeadline = "2026-12-31"\nlabel = "v1"\n'
    )
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("\n".join(json.dumps(t) for t in TASKS))
    assert run(["ingest", "tasks", str(tasks)], tmp_path)[0] == 0
    assert run(["review", "--once", "--now", NOW], tmp_path)[0] == 0
    return tmp_path


def test_cli_decisions_are_idempotent_and_conflicts_fail(folder: Path) -> None:
    assert run(["proposals", "approve", "1"], folder)[0] == 0
    code, out, _ = run(["proposals", "approve", "1"], folder)
    assert code == 0 and "already scheduled" in out
    assert run(["proposals", "reject", "2", "--by", "dana"], folder)[0] == 0
    code, out, _ = run(["proposals", "reject", "2", "--by", "erin"], folder)
    assert code == 0 and "already rejected by dana; nothing changed" in out
    code, _, err = run(["proposals", "approve", "2"], folder)
    assert code == 1 and "proposal 2 is already rejected by dana; it cannot be approved" in err
    code, _, err = run(["proposals", "reject", "1"], folder)
    assert code == 1 and "proposal 1 is already scheduled" in err
    code, out, _ = run(["audit", "--json", "--action", "proposal.rejected"], folder)
    assert [e["actor"] for e in json.loads(out)] == ["dana"]  # the repeat wrote nothing


def test_api_decisions_are_idempotent_and_conflicts_are_409(tmp_path: Path) -> None:
    cfg = make_config({"reviewer": {"store": f"sqlite:///{tmp_path / 'p.db'}", "api_token": TOKEN}})
    app = App.from_config(cfg)
    app.store.upsert_tasks(task_rows(TASKS))
    app.engine.review(parse_ts(NOW))
    with TestClient(create_app(app)) as c:
        for _ in range(2):
            assert c.post("/api/proposals/1/approve", headers=AUTH).status_code == 200
            r = c.post("/api/proposals/2/reject", headers=AUTH, json={"reason": "noise"})
            assert r.status_code == 200 and r.json()["state"] == "rejected"
        r = c.post("/api/proposals/2/approve", headers=AUTH)
        assert r.status_code == 409 and "already rejected" in r.json()["detail"]
        assert c.post("/api/proposals/1/reject", headers=AUTH).status_code == 409
        assert len(c.get("/api/audit?action=proposal.rejected").json()) == 1
        # An unknown state is refused like the findings' filter, not answered with [].
        for path in ("/api/proposals?state=nope", "/api/findings?state=nope"):
            r = c.get(path)
            assert r.status_code == 422 and "state" in json.dumps(r.json()), path
        assert {p["state"] for p in c.get("/api/proposals?state=all").json()} == {
            "scheduled",
            "rejected",
        }
    app.close()


def test_cli_state_filter_names_the_states(folder: Path) -> None:
    assert set(STATES) == {s.value for s in ProposalState}
    code, _, err = run(["proposals", "list", "--state", "nope"], folder)
    assert code == 2 and "pending" in err


def test_goals_json_is_the_api_shape(folder: Path) -> None:
    code, out, _ = run(["goals", "--json", "--now", NOW], folder)
    assert code == 0
    cli_goals = json.loads(out)
    app = App.from_config(load_config(folder / "config.toml"), clock=lambda: parse_ts(NOW))
    with TestClient(create_app(app)) as c:
        api_goals = c.get("/api/goals").json()
    app.close()
    assert set(cli_goals) == {"as_of", "goals"}
    assert cli_goals == api_goals


def test_a_stalled_goal_is_not_on_track(store) -> None:  # type: ignore[no-untyped-def]
    store.upsert_tasks(
        task_rows(
            [
                {
                    "id": f"d{i}",
                    "title": "done",
                    "goal_id": "g",
                    "status": "completed",
                    "created_at": "2026-02-20T00:00:00Z",
                    "started_at": "2026-02-27T00:00:00Z",
                    "finished_at": "2026-02-28T00:00:00Z",
                }
                for i in range(4)
            ]
            + [{"id": "p1", "title": "left", "goal_id": "g", "created_at": "2026-02-20T00:00:00Z"}]
        )
    )
    goal = GoalDef(title="G", deadline="2026-12-31")
    # Four done in the last 14 days: the rate alone predicts the deadline is met.
    st = goal_status(store.view(parse_ts("2026-03-10T00:00:00Z")), "g", goal)
    assert st["predicted_completion"] < st["deadline"]
    assert st["stalled"] and st["on_track"] is False
    assert "no linked item completed or started since 2026-02-28T00:00:00Z" in st["on_track_reason"]
    assert "10 days; stalled after 7 days" in st["on_track_reason"]
    st = goal_status(store.view(parse_ts("2026-03-02T00:00:00Z")), "g", goal)
    assert not st["stalled"] and st["on_track"] is True and st["on_track_reason"] is None


def test_ingest_counts_refused_records_not_messages(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[reviewer]\nstore = "sqlite:///p.db"\n')
    good = {
        "task_id": "t1",
        "task_type": "impl",
        "model": "m",
        "executor": "e",
        "duration_seconds": 3,
        "status": "completed",
        "created_at": "2026-03-01T00:00:00Z",
    }
    three_errors = {**good, "duration_seconds": "slow", "status": "meh", "created_at": "when"}
    f = tmp_path / "m.jsonl"
    f.write_text(json.dumps(good) + "\n" + json.dumps(three_errors) + "\n{oops\n")
    code, out, err = run(["ingest", "metrics", str(f)], tmp_path)
    assert code == 1
    assert "stored 1 record(s), rejected 2" in out
    assert err.count(f"{f}:2:") == 3 and err.count(f"{f}:3:") == 1
    code, out, _ = run(["ingest", "metrics", str(f), "--json"], tmp_path)
    report = json.loads(out)
    assert report["rejected"] == 2 and len(report["errors"]) == 4
    tasks = tmp_path / "t.jsonl"
    tasks.write_text(json.dumps({"id": "x", "status": "nope", "priority": "nah"}) + "\n")
    code, out, _ = run(["ingest", "tasks", str(tasks)], tmp_path)
    assert "rejected 1" in out


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ('[reviewer]\nstore = "mysql://u:pw@db/x"\n', ["mysql://", "sqlite:///", "postgresql://"]),
        ("[rules.stale-queue]\nmax_idle = 5\n", ["max_idle", "write 5s or 5m"]),
        ("[reviewer]\ninterval = 600\n", ["interval", "write 600s or 600m"]),
    ],
)
def test_config_check_refuses_unknown_stores_and_bare_numbers(
    tmp_path: Path, toml: str, words: list[str]
) -> None:
    (tmp_path / "config.toml").write_text(toml)
    code, _, err = run(["config", "check"], tmp_path)
    assert code == 2
    assert all(w in err for w in words), err
    assert "pw" not in err


@pytest.mark.parametrize(
    "args",
    [
        ["findings", "list"],
        ["proposals", "list"],
        ["proposals", "show", "1"],
        ["runs", "list"],
        ["silence", "list"],
        ["metrics"],
        ["goals"],
        ["audit"],
        ["ab", "--by", "model"],
        ["review", "--once", "--dry-run"],
        ["backtest", "--from", "2026-03-01", "--to", "2026-03-02", "--step", "1d"],
    ],
)
def test_read_only_commands_never_create_a_store(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "config.toml").write_text('[reviewer]\nstore = "sqlite:///reviewer.db"\n')
    code, _, err = run(args, tmp_path)
    assert code == 1, err
    assert f"there is no store at {tmp_path / 'reviewer.db'}" in err and "ingest tasks" in err
    assert not (tmp_path / "reviewer.db").exists()


def _backtest_stderr(folder: Path, *extra: str) -> str:
    """Run backtest with stderr on a pseudo-terminal; what the terminal showed."""
    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    args = ["--from", "2026-03-01", "--to", "2026-03-10", "--step", "1d"]
    proc = subprocess.run(
        [sys.executable, "-m", "reviewer", "--config", "config.toml", "backtest", *args, *extra],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
        timeout=120,
        check=True,
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert proc.stdout
    return seen.decode()


def test_backtest_shows_progress_on_a_terminal_only(folder: Path) -> None:
    shown = _backtest_stderr(folder)
    assert "replaying" in shown and "10/10" in shown
    assert "replaying" not in _backtest_stderr(folder, "--json")
    code, out, err = run(
        ["backtest", "--from", "2026-03-01", "--to", "2026-03-10", "--step", "1d"], folder
    )
    assert code == 0 and "replaying" not in err and "replaying" not in out  # not a terminal


def test_audit_command_shows_who_what_when_why(folder: Path) -> None:
    assert run(["proposals", "approve", "1", "--by", "alice", "--reason", "real"], folder)[0] == 0
    assert run(["proposals", "reject", "2", "--by", "bob", "--reason", "noise"], folder)[0] == 0
    code, out, _ = run(["audit"], folder)
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split() == ["AT", "ACTOR", "WHAT", "ABOUT", "REASON"]
    assert "bob" in lines[0] and "proposal.rejected #2 pending->rejected" in lines[0]
    assert lines[0].rstrip().endswith("noise")
    code, out, _ = run(["audit", "--json", "--actor", "alice", "--action", "proposal"], folder)
    entries = json.loads(out)
    assert [e["action"] for e in entries] == ["proposal.scheduled", "proposal.approved"]
    assert entries[1]["reason"] == "real" and entries[1]["at"]
    code, out, _ = run(["audit", "--json", "--limit", "1"], folder)
    assert len(json.loads(out)) == 1
    code, _, err = run(["audit", "--since", "last tuesday"], folder)
    assert code == 2 and "--since: 'last tuesday' is not an ISO 8601 time" in err
    code, _, err = run(["audit", "--limit", "0"], folder)
    assert code == 2 and "--limit" in err


def test_config_check_lists_token_names_and_scopes_never_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REVIEWER_API_TOKEN", raising=False)
    monkeypatch.setenv("REVIEWER_TOKEN_CI", "ci-token-value-0000001")
    (tmp_path / "config.toml").write_text(
        '[reviewer.tokens.ci]\nscopes = ["ingest"]\n'
        '[reviewer.tokens.ops]\ntoken = "ops-token-value-000002"\nscopes = ["admin", "read"]\n'
    )
    code, out, _ = run(["config", "check"], tmp_path)
    assert code == 0 and "tokens: ci (ingest), ops (admin read)" in out
    code, out, _ = run(["config", "check", "--json"], tmp_path)
    assert json.loads(out)["tokens"] == {"ci": ["ingest"], "ops": ["admin", "read"]}
    assert "value-00000" not in out
    (tmp_path / "config.toml").write_text("")
    monkeypatch.delenv("REVIEWER_TOKEN_CI")
    code, out, _ = run(["config", "check"], tmp_path)
    assert "tokens: none (every change over HTTP is refused)" in out
