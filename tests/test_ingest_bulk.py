"""Bulk ingest (issue 13): the fast path gives the model's rows, and a large file with
bad lines keeps every good row, names every bad line and commits in batches, on
SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from reviewer import ingest
from reviewer.ingest import INGEST_BATCH, ingest_jsonl
from store import open_store
from store.base import Store
from store.records import MetricRecord, TaskRecord, plain_row
from tests.pg import fresh_schema_url
from tests.test_fuzz import METRIC_FIELDS, TASK_FIELDS, VALUE

NOW = "2026-03-10T00:00:00Z"
MODELS = {"tasks": (TaskRecord, TASK_FIELDS), "metrics": (MetricRecord, METRIC_FIELDS)}
BASES = {
    "tasks": {"id": "x", "title": "t"},
    "metrics": {
        "task_id": "x",
        "duration_seconds": 2.0,
        "status": "failed",
        "created_at": "2026-03-01T00:00:00Z",
    },
}


def _record(fields: list[str], base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid base record with up to six fields set to hostile values (test_fuzz's)."""
    return st.dictionaries(st.sampled_from([*fields, "extra_field"]), VALUE, max_size=6).map(
        lambda over: {**base, **over}
    )


def _model_row(model: type[TaskRecord] | type[MetricRecord], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data).row()
    except ValidationError:
        return "rejected"


@pytest.mark.parametrize("kind", ["tasks", "metrics"])
@settings(max_examples=400, deadline=None, database=None)
@given(data=st.data())
def test_the_fast_path_gives_the_models_row_or_defers_to_it(kind: str, data: Any) -> None:
    model, fields = MODELS[kind]
    record = data.draw(_record(fields, BASES[kind]))
    fast = plain_row(model, record)
    if fast is not None:  # taken only for records the model accepts, with the same row
        assert fast == _model_row(model, record), record


def _metric(i: int, **over: Any) -> dict[str, Any]:
    rec = {
        "task_id": f"t-{i:06d}",
        "task_type": "impl",
        "model": "claude-sonnet",
        "executor": "runner-1",
        "duration_seconds": 12.5 + i % 100,
        "status": "completed" if i % 7 else "failed",
        "created_at": f"2026-03-0{1 + i % 9}T{i % 24:02d}:{i % 60:02d}:00Z",
        "tokens_in": 1000 + i,
        "tokens_out": 500,
        "cost_usd": 0.25,
        "api_calls": 3,
    }
    return {**rec, **over}


def test_plainly_valid_records_take_the_fast_path() -> None:
    task = {
        "id": "a",
        "title": "Importer",
        "status": "running",
        "priority": "high",
        "created_at": "2026-03-01T10:00:00Z",
        "started_at": "2026-03-01T10:05:00Z",
        "labels": ["backend"],
        "depends_on": [],
        "attempts": 1,
        "region": "eu",
    }
    row = plain_row(TaskRecord, task)
    assert row is not None and row == TaskRecord.model_validate(task).row()
    assert row["extra"] == '{"region": "eu"}' and row["labels"] == '["backend"]'
    metric = _metric(1, duration_seconds=3)
    row = plain_row(MetricRecord, metric)
    assert row is not None and row == MetricRecord.model_validate(metric).row()
    assert row["duration_seconds"] == 3.0
    # Anything the model would convert or reject goes to the model.
    for over in (
        {"created_at": "2026-03-01 10:00:00"},
        {"created_at": "2026-02-30T10:00:00Z"},
        {"created_at": "1969-12-31T23:59:59Z"},
        {"status": " completed"},
        {"task_id": " padded "},
        {"tokens_in": True},
        {"tokens_in": -1},
        {"duration_seconds": float("nan")},
        {"error": "a\x00b"},
    ):
        assert plain_row(MetricRecord, _metric(1, **over)) is None, over


BAD = {  # line number -> (record or raw line, the field its message names)
    3: ({"duration_seconds": -1}, "duration_seconds"),
    4_999: ({"status": "done"}, "status"),
    5_001: ({"created_at": "yesterday"}, "created_at"),
    9_876: ("{not json", "not valid JSON"),
    12_345: ({"tokens_in": "many"}, "tokens_in"),
    19_999: ({"task_id": ""}, "task_id"),
}
LINES = 20_000


def _write_big_file(path: Path) -> set[str]:
    """20k metric lines, bad ones at BAD's lines; returns the good records' task ids."""
    good = set()
    with path.open("w") as fh:
        for line in range(1, LINES + 1):
            bad = BAD.get(line)
            if bad is None:
                rec = _metric(line)
                if line % 1000 == 0:  # another ISO form, normalised on the way in
                    rec["created_at"] = rec["created_at"].replace("T", " ").replace("Z", "+00:00")
                good.add(rec["task_id"])
                fh.write(json.dumps(rec) + "\n")
            elif isinstance(bad[0], str):
                fh.write(bad[0] + "\n")
            else:
                fh.write(json.dumps(_metric(line, **bad[0])) + "\n")
    return good


def _snapshot(store: Store) -> list[tuple[Any, ...]]:
    rows = store.query("SELECT * FROM task_metrics ORDER BY task_id, created_at")
    return [tuple(r.values()) for r in rows]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        with fresh_schema_url() as url:
            yield url


def test_a_large_file_keeps_every_good_row_names_every_bad_line_and_commits_in_batches(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "metrics.jsonl"
    good = _write_big_file(path)
    store = open_store(store_url)
    watcher = open_store(store_url)  # another connection: sees only what was committed
    committed: list[int] = []
    upsert = store.upsert_metrics

    def counting(rows: Any) -> int:
        n = upsert(rows)
        committed.append(int(watcher.query("SELECT COUNT(*) AS n FROM task_metrics")[0]["n"]))
        return n

    monkeypatch.setattr(store, "upsert_metrics", counting)
    try:
        report = ingest_jsonl(store, path, "metrics", now=NOW)
        assert report.stored == len(good) == LINES - len(BAD)
        # Every bad line named once, with its field (or what was wrong with the line).
        assert len(report.rejected) == len(BAD), report.rejected
        for line, (_, field) in BAD.items():
            assert any(m.startswith(f"{path}:{line}: ") and field in m for m in report.rejected)
        ids = {r["task_id"] for r in store.query("SELECT task_id FROM task_metrics")}
        assert ids == good
        # Batches of INGEST_BATCH records, each committed before the next began.
        assert len(committed) == -(-len(good) // INGEST_BATCH) >= 4
        assert committed == sorted(committed) and committed[-1] == len(good)
        assert committed[0] == INGEST_BATCH
        # Timestamps normalised; loading the same file again changes nothing.
        odd = store.query("SELECT created_at FROM task_metrics WHERE task_id = 't-001000'")
        assert odd == [{"created_at": "2026-03-02T16:40:00Z"}]
        before = _snapshot(store)
        again = ingest_jsonl(store, path, "metrics", now=NOW)
        assert again.stored == report.stored and _snapshot(store) == before
    finally:
        watcher.close()
        store.close()


def test_the_batch_size_bounds_each_write_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "INGEST_BATCH", 700)
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(_metric(i)) + "\n" for i in range(3000)))
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    sizes: list[int] = []
    upsert = store.upsert_metrics

    def counting(rows: Any) -> int:
        sizes.append(len(rows))
        return upsert(rows)

    monkeypatch.setattr(store, "upsert_metrics", counting)
    try:
        assert ingest_jsonl(store, path, "metrics", now=NOW).stored == 3000
    finally:
        store.close()
    assert sizes == [700, 700, 700, 700, 200]
