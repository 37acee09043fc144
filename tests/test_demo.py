"""``reviewer demo``: its history ends now, what it prints works, and its report is real."""

from __future__ import annotations

import json
import re
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from reviewer.cli import cli
from reviewer.demo import demo_end
from reviewer.sim import simulate
from store.sqlite import SQLiteStore

SMALL = {"seed": 3, "days": 8, "tasks_per_day": 16, "noise": 0.5}
_FINDING = re.compile(r"^  (?:critical|error|warning|info)\s+(\S+)/(\S+)\s+(\S+)(?: \[|$)")


def test_a_history_moved_in_time_keeps_its_shape(tmp_path: Path) -> None:
    """``simulate(end=...)`` dates the same rows by one offset, whatever the hour or day."""
    a = SQLiteStore(":memory:")
    first = simulate(a, workspace=tmp_path / "a", **SMALL)
    b = SQLiteStore(":memory:")
    end = datetime(2027, 1, 9, 3, tzinfo=UTC)  # a Saturday night, not a Wednesday evening
    moved = simulate(b, workspace=tmp_path / "b", end=end, **SMALL)
    assert moved.end == end and moved.start == end - (first.end - first.start)
    offset = end - first.end

    def rows(store: SQLiteStore) -> list[tuple[str, str, str]]:
        got = store.query("SELECT task_id, status, created_at FROM task_metrics ORDER BY 1, 3")
        return [(r["task_id"], r["status"], r["created_at"]) for r in got]

    shifted = [
        (t, s, (datetime.fromisoformat(c) + offset).strftime("%Y-%m-%dT%H:%M:%SZ"))
        for t, s, c in rows(a)
    ]
    assert rows(b) == shifted
    assert [x.subject for x in moved.labels] == [x.subject for x in first.labels]
    with pytest.raises(ValueError, match="start or end"):
        simulate(SQLiteStore(":memory:"), workspace=tmp_path / "c", start=end, end=end, **SMALL)


def test_the_demo_ends_at_the_current_hour() -> None:
    now = datetime.now(UTC)
    assert demo_end() <= now < demo_end() + timedelta(hours=1)
    assert demo_end(datetime(2026, 4, 1, 18, 42, 7, tzinfo=UTC)) == datetime(
        2026, 4, 1, 18, tzinfo=UTC
    )


def test_the_demo_refuses_an_end_in_the_future(tmp_path: Path) -> None:
    later = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = CliRunner().invoke(cli, ["demo", "--db", str(tmp_path / "d.db"), "--end", later])
    assert result.exit_code == 2
    assert "is in the future" in result.stderr
    assert not (tmp_path / "d.db").exists()


@pytest.mark.slow
def test_what_the_demo_prints_is_what_a_review_finds_and_its_commands_work(
    tmp_path: Path,
) -> None:
    home = tmp_path / "a demo dir"  # a space: the printed commands must quote it
    home.mkdir()
    before = demo_end()
    result = CliRunner().invoke(cli, ["demo", "--db", str(home / "demo.db")])
    assert result.exit_code == 0, result.output
    out = result.output
    end = next(e for e in (before, demo_end()) if f"to {e:%Y-%m-%d %H:%M} UTC" in out)
    printed = {m.groups() for line in out.splitlines() if (m := _FINDING.match(line))}
    assert len(printed) > 30
    config = home / "demo-workspace" / "config.toml"

    # reviewed now, by the ordinary command, the demo store has the same findings
    again = CliRunner().invoke(cli, ["--config", str(config), "review", "--once", "--json"])
    assert again.exit_code == 0, again.output
    review = json.loads(again.stdout)
    found = {(f["rule"], f["kind"], f["subject"]) for f in review["findings"]}
    if review["now"][:10] != f"{end:%Y-%m-%d}":  # run across midnight: a new budget day
        printed.discard(("usage-spikes", "budget", "all"))
        found.discard(("usage-spikes", "budget", "all"))
    assert found == printed
    fingerprints = set(re.findall(r"fingerprint `([0-9a-f]{16})`", out))
    assert fingerprints and fingerprints <= {f["fingerprint"] for f in review["findings"]} | {
        p["fingerprint"] for p in review["proposals"]
    } | _proposal_fingerprints(config)

    # every "next step" runs as printed
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Next steps"))
    steps = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        steps.append(shlex.split(line, comments=True))
    assert len(steps) >= 5
    for argv in steps:
        assert argv[0] == "reviewer" and argv[1:3] == ["--config", str(config)]
        ran = CliRunner().invoke(cli, argv[1:])
        assert ran.exit_code == 0, (argv, ran.output)
    assert any(argv[3:] == ["report"] for argv in steps)

    # and so does the silence hint of a printed proposal, with the demo's config
    hints = [shlex.split(x) for x in lines if x.strip().startswith("reviewer silence add")]
    assert hints
    for argv in hints:
        ran = CliRunner().invoke(cli, argv[1:], env={"REVIEWER_CONFIG": str(config)})
        assert ran.exit_code == 0, (argv, ran.output)
    listed = CliRunner().invoke(cli, ["--config", str(config), "silence", "list", "--json"])
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)) == len(hints)


def _proposal_fingerprints(config: Path) -> set[str]:
    out = CliRunner().invoke(cli, ["--config", str(config), "proposals", "list", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    items = data["proposals"] if isinstance(data, dict) else data
    return {p["fingerprint"] for p in items}


def test_the_readme_demo_block_is_replaced_whole() -> None:
    from readme_demo import END, START, block, replace_block

    readme = f"# x\n\nbefore\n{START}\nold\n{END}\nafter\n"
    new = replace_block(readme, block("Built a demo pipeline\nNext steps:\n"))
    assert new.startswith("# x\n\nbefore\n" + START) and new.endswith(END + "\nafter\n")
    assert "old" not in new and "```text\nBuilt a demo pipeline\nNext steps:\n```" in new
    with pytest.raises(SystemExit, match="exactly one"):
        replace_block(readme + START, "x")


@pytest.mark.slow
def test_the_readme_demo_block_comes_from_a_real_run(tmp_path: Path) -> None:
    from readme_demo import main

    readme = tmp_path / "README.md"
    readme.write_text("# r\n<!-- demo:start -->\n<!-- demo:end -->\n")
    assert main(["--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "Workspace and config: ./reviewer-demo-workspace\n" in text
    assert "  reviewer --config ./reviewer-demo-workspace/config.toml report\n" in text
    assert "/tmp" not in text and "readme-demo-" not in text
    # what the repository's README shows has the same lines, up to dates and timings
    ours = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for line in (
        "--- from `reviewer --config ./reviewer-demo-workspace/config.toml report`",
        "Incident on executor:runner-c",
        "(priorities) abandoned: task reviewer-",
    ):
        assert line in text and line in ours
