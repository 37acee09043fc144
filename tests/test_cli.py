"""The command line as a user meets it: messages, exit codes, JSON, crash safety."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from reviewer.cli import cli
from reviewer.failpoint import FAILPOINT_ENV, FAILPOINT_EXIT

TASKS = [
    {
        "id": "t1",
        "title": "Wire the metrics endpoint",
        "priority": "high",
        "created_at": "2026-03-01T00:00:00Z",
    },
    {"id": "t2", "title": "Polish docs", "priority": "low", "created_at": "2026-03-01T00:00:00Z"},
]


def write_config(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[reviewer]\nstore = "sqlite:///pipeline.db"\n{extra}')
    return cfg


def run(args: list[str], cfg: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(cfg), *args])
    return result.exit_code, result.stdout, result.stderr


def ingest_tasks(tmp_path: Path, cfg: Path, tasks: list[dict[str, object]] = TASKS) -> None:
    f = tmp_path / "tasks.jsonl"
    f.write_text("\n".join(json.dumps(t) for t in tasks) + "\n")
    code, _, err = run(["ingest", "tasks", str(f)], cfg)
    assert code == 0, err


def test_bad_jsonl_line_names_file_line_field_keeps_good_lines(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    f = tmp_path / "tasks.jsonl"
    f.write_text(
        json.dumps(TASKS[0])
        + "\n"
        + json.dumps({"id": "t9", "title": "x", "status": "done"})
        + "\n"
        + "{not json\n"
        + json.dumps({"title": "no id"})
        + "\n"
        + json.dumps(TASKS[1])
        + "\n"
    )
    code, out, err = run(["ingest", "tasks", str(f)], cfg)
    assert code == 1
    assert f"{f}:2: field 'status'" in err and '(got "done")' in err
    assert f"{f}:3: not valid JSON" in err
    assert f"{f}:4: field 'id': required field is missing" in err
    assert "stored 2 record(s), rejected 3" in out
    code, out, _ = run(["review", "--once", "--now", "2026-03-10T00:00:00Z", "--json"], cfg)
    assert code == 0
    assert {f["subject"] for f in json.loads(out)["findings"]} == {"t1"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "[reviewer]\nmax_new_proposals_per_cycle = -1\n",
            "[reviewer] option 'max_new_proposals_per_cycle': "
            "Input should be greater than or equal to 0",
        ),
        (
            '[rules.stale-queue]\nmax_idle = "soon"\n',
            "[rules.stale-queue] option 'max_idle': 'soon' is not a duration",
        ),
        (
            '[rules.stale-queue]\napproval = "sometimes"\n',
            "[rules.stale-queue] option 'approval': Input should be 'manual', 'auto' or 'off'",
        ),
        ('[rules.stale-queue]\nmax_idel = "3d"\n', "[rules.stale-queue] unknown option 'max_idel'"),
        (
            "[rules.stale-queu]\n",
            "[rules.stale-queu] is not a known rule; known rules: stale-queue",
        ),
        ("[reviewer\n", "not valid TOML"),
    ],
)
def test_bad_config_names_file_table_option_and_exits_2(
    tmp_path: Path, body: str, message: str
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(body)
    code, _, err = run(["config", "check"], cfg)
    assert code == 2
    assert str(cfg) in err and message in err


def test_shipped_config_toml_validates() -> None:
    root = Path(__file__).resolve().parents[1]
    code, out, err = run(["config", "check", "--json"], root / "config.toml")
    assert code == 0, err
    summary = json.loads(out)
    assert set(summary["rules"]) >= {"stale-queue"}


def test_review_json_has_the_contract_shape(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    ingest_tasks(tmp_path, cfg)
    code, out, _ = run(["review", "--once", "--now", "2026-03-10T00:00:00Z", "--json"], cfg)
    assert code == 0
    data = json.loads(out)
    assert {"run_id", "now", "findings", "proposals", "errors"} <= set(data)
    f = data["findings"][0]
    assert {"rule", "kind", "subject", "severity", "fingerprint", "summary", "evidence"} <= set(f)
    p = data["proposals"][0]
    assert {"id", "rule", "fingerprint", "title", "state"} <= set(p)


def test_listings_take_json_and_decisions_are_audited(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    ingest_tasks(tmp_path, cfg)
    run(["review", "--once", "--now", "2026-03-10T00:00:00Z"], cfg)
    for args in (
        ["proposals", "list"],
        ["findings", "list"],
        ["runs", "list"],
        ["silence", "list"],
    ):
        code, out, err = run([*args, "--json"], cfg)
        assert code == 0, (args, err)
        assert isinstance(json.loads(out), list)
    code, out, _ = run(
        ["proposals", "approve", "1", "--by", "alice", "--reason", "good catch"], cfg
    )
    assert code == 0 and "reviewer-1" in out
    code, out, _ = run(["proposals", "show", "1", "--json"], cfg)
    shown = json.loads(out)
    assert shown["state"] == "scheduled"
    assert [(a["actor"], a["action"]) for a in shown["audit"]] == [
        ("reviewer", "proposal.created"),
        ("alice", "proposal.approved"),
        ("alice", "proposal.scheduled"),
    ]
    code, _, err = run(["proposals", "reject", "1", "--by", "bob"], cfg)
    assert code == 1 and "scheduled" in err
    code, _, err = run(["proposals", "show", "99"], cfg)
    assert code == 1 and "no proposal with id 99" in err


def test_silence_add_list_expire(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    code, out, err = run(
        [
            "silence",
            "add",
            "--rule",
            "stale-queue",
            "--subject",
            "t*",
            "--until",
            "2099-01-01T00:00:00Z",
            "--by",
            "alice",
            "--comment",
            "migration week",
            "--json",
        ],
        cfg,
    )
    assert code == 0, err
    sid = json.loads(out)["id"]
    code, out, _ = run(["silence", "list", "--json"], cfg)
    assert [s["id"] for s in json.loads(out)] == [sid]
    code, _, _ = run(["silence", "expire", str(sid), "--by", "alice"], cfg)
    assert code == 0
    code, out, _ = run(["silence", "list", "--json"], cfg)
    assert json.loads(out) == []
    code, _, err = run(
        [
            "silence",
            "add",
            "--rule",
            "nope",
            "--subject",
            "x",
            "--until",
            "2099-01-01T00:00:00Z",
            "--comment",
            "c",
        ],
        cfg,
    )
    assert code == 2 and "matches no rule" in err


@pytest.mark.slow
def test_kill_between_insert_and_state_update_files_the_task_once(tmp_path: Path) -> None:
    """A process dies right after inserting the backlog task; the next approve files it once."""
    cfg = write_config(tmp_path)
    ingest_tasks(tmp_path, cfg)
    run(["review", "--once", "--now", "2026-03-10T00:00:00Z"], cfg)
    cmd = [sys.executable, "-m", "reviewer", "--config", str(cfg), "proposals", "approve", "1"]
    env = {**os.environ, FAILPOINT_ENV: "schedule.after_insert"}
    died = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert died.returncode == FAILPOINT_EXIT
    import sqlite3

    db = sqlite3.connect(tmp_path / "pipeline.db")
    assert db.execute("SELECT COUNT(*) FROM tasks WHERE source = 'reviewer'").fetchone()[0] == 0
    assert (
        db.execute("SELECT state FROM reviewer_proposals WHERE id = 1").fetchone()[0] == "pending"
    )
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "already scheduled" in again.stdout
    assert db.execute("SELECT COUNT(*) FROM tasks WHERE source = 'reviewer'").fetchone()[0] == 1
    assert (
        db.execute("SELECT state FROM reviewer_proposals WHERE id = 1").fetchone()[0] == "scheduled"
    )
    db.close()


def test_unknown_command_is_usage_error() -> None:
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2


def test_config_check_renders_user_templates(tmp_path: Path) -> None:
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "proposal.md.j2").write_text(
        "Seen: {{ finding.summary }} {{ finding.no_such_field }}\n"
    )
    cfg = write_config(tmp_path, 'templates_dir = "tpl"\n')
    code, _, err = run(["config", "check"], cfg)
    assert code == 2 and "no_such_field" in err
    (tdir / "proposal.md.j2").write_text("Seen: {{ finding.summary }\n")
    code, _, err = run(["config", "check"], cfg)
    assert code == 2 and "proposal.md.j2:1" in err
    (tdir / "proposal.md.j2").write_text("Seen: {{ finding.summary }}\n")
    code, _, err = run(["config", "check"], cfg)
    assert code == 0, err


def test_rules_list_and_show(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, '[rules.stale-queue]\nmax_idle = "5d"\napproval = "auto"\n')
    code, out, _ = run(["rules", "list", "--json"], cfg)
    assert code == 0
    listed = {r["rule"]: r for r in json.loads(out)}
    assert list(listed)[:5] == [
        "stale-queue",
        "stuck-phases",
        "usage-spikes",
        "spec-drift",
        "flaky-tests",
    ]
    assert listed["stale-queue"]["approval"] == "auto"
    code, out, _ = run(["rules", "show", "stale-queue"], cfg)
    assert code == 0 and "Fires:" in out and 'max_idle = "5d"' in out
    code, _, err = run(["rules", "show", "nope"], cfg)
    assert code == 2 and "known rules: stale-queue" in err


def test_runs_list_counts_records_dated_after_the_present(tmp_path: Path) -> None:
    """A record from the future is stored with a warning; the run says how many the store holds."""
    cfg = write_config(tmp_path)
    ingest_tasks(
        tmp_path,
        cfg,
        [*TASKS, {"id": "t9", "title": "From 2099", "created_at": "2099-01-01T00:00:00Z"}],
    )
    code, out, err = run(["review", "--once"], cfg)
    assert code == 0, err
    assert "the store holds 1 record(s) dated after" in out + err
    code, out, _ = run(["runs", "list", "--json"], cfg)
    assert code == 0 and json.loads(out)[0]["future_records"] == 1
    code, out, _ = run(["runs", "list"], cfg)
    header, row = out.splitlines()[:2]
    assert header.split()[9] == "FUTURE_RECORDS" and row.split()[9] == "1"
    code, out, _ = run(["review", "--once", "--at", "2026-03-05T00:00:00Z"], cfg)
    assert json.loads(run(["runs", "list", "--json"], cfg)[1])[0]["future_records"] == 1
