"""Prometheus metrics of the reviewer itself, read from the store at scrape time.

Everything is derived from the reviewer's tables, so the figures are right
after a restart and agree with ``reviewer runs list`` and the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from reviewer.app import App
from store.controls import ControlKind
from store.timeutil import fmt_ts, parse_ts


class ReviewerCollector(Collector):
    def __init__(self, app: App):
        self.app = app

    def collect(self) -> Iterator[Metric]:
        state = self.app.state
        runs = CounterMetricFamily(
            "reviewer_review_runs", "Review cycles by final status.", labels=["status"]
        )
        for row in state.run_counts():
            runs.add_metric([row["status"]], row["n"])
        yield runs

        last = state.last_run()
        last_ts = GaugeMetricFamily(
            "reviewer_last_run_timestamp_seconds", "Start of the last finished review cycle."
        )
        last_dur = GaugeMetricFamily(
            "reviewer_last_run_duration_seconds", "Duration of the last finished review cycle."
        )
        last_ok = GaugeMetricFamily(
            "reviewer_last_run_success", "1 if the last finished review cycle had no errors."
        )
        if last is not None:
            last_ts.add_metric([], parse_ts(last.started_at).timestamp())
            last_dur.add_metric([], (last.duration_ms or 0) / 1000)
            last_ok.add_metric([], 1.0 if last.status == "ok" else 0.0)
        yield last_ts
        yield last_dur
        yield last_ok

        findings = GaugeMetricFamily(
            "reviewer_findings", "Findings by rule and state.", labels=["rule", "state"]
        )
        for row in state.finding_counts():
            findings.add_metric([row["rule"], row["state"]], row["n"])
        yield findings

        proposals = GaugeMetricFamily(
            "reviewer_proposals", "Proposals by rule and state.", labels=["rule", "state"]
        )
        for row in state.proposal_counts():
            proposals.add_metric([row["rule"], row["state"]], row["n"])
        yield proposals

        controls = GaugeMetricFamily(
            "reviewer_controls_active",
            "Controls the pipeline obeys now (pause, hold, throttle, quarantine).",
            labels=["kind"],
        )
        active = state.active_control_counts(fmt_ts(self.app.clock()))
        for kind in ControlKind:
            controls.add_metric([kind.value], active.get(kind.value, 0))
        yield controls
        yield from _notification_metrics(state.notification_counts())


def _notification_metrics(rows: list[dict[str, Any]]) -> Iterator[Metric]:
    """Per receiver, from the notification outbox (reviewer/notify.py)."""
    total = CounterMetricFamily(
        "reviewer_notifications",
        "Notification messages by receiver and outcome (sent, dropped after failing).",
        labels=["receiver", "status"],
    )
    pending = GaugeMetricFamily(
        "reviewer_notifications_pending",
        "Notification messages waiting to be sent (retried each cycle).",
        labels=["receiver"],
    )
    failures = CounterMetricFamily(
        "reviewer_notification_failures",
        "Failed deliveries (one per message per cycle it failed).",
        labels=["receiver"],
    )
    for row in rows:
        name = row["receiver"]
        total.add_metric([name, "sent"], row["sent"] or 0)
        total.add_metric([name, "dropped"], row["dropped"] or 0)
        pending.add_metric([name], row["pending"] or 0)
        failures.add_metric([name], row["failures"] or 0)
    yield total
    yield pending
    yield failures


def registry_for(app: App) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReviewerCollector(app))
    return registry
