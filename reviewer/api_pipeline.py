"""HTTP routes for pipeline metrics, A/B comparisons and goals (Phases 1–3).

``reviewer.api`` includes ``router``. Reads are open; writes (``POST``) need
the bearer token (``reviewer.api_deps.require_token``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, status
from pydantic import ValidationError

from reviewer.api_deps import get_app, require_token
from reviewer.app import App
from reviewer.config import ConfigError
from reviewer.experiments import compare_arms
from reviewer.ingest import store_records
from reviewer.metrics import pipeline_metrics
from store import ARM_COLUMNS, MetricFilter
from store.goals import GoalIn, goals_report
from store.records import describe_errors
from store.timeutil import fmt_ts, norm_ts

router = APIRouter()
_UNPROCESSABLE = 422  # the constant's name differs between Starlette versions


def _now(app: App) -> datetime:
    return app.engine.clock()


def _filters(
    since: str | None = Query(None, description="Runs created at or after (ISO 8601)."),
    until: str | None = Query(None, description="Runs created before (ISO 8601)."),
    task_type: str | None = Query(None),
    model: str | None = Query(None),
    executor: str | None = Query(None),
) -> MetricFilter:
    bounds: dict[str, str | None] = {}
    for name, value in (("since", since), ("until", until)):
        try:
            bounds[name] = norm_ts(value) if value else None
        except ValueError:
            raise HTTPException(
                _UNPROCESSABLE,
                f"query parameter '{name}': expected an ISO 8601 time, like 2026-03-01T12:00:00Z"
                f" (got {value!r})",
            ) from None
    return MetricFilter(
        since=bounds["since"],
        until=bounds["until"],
        task_type=task_type,
        model=model,
        executor=executor,
    )


@router.get("/api/agent/metrics")
def get_metrics(
    f: MetricFilter = Depends(_filters),  # noqa: B008
    app: App = Depends(get_app),  # noqa: B008
) -> dict[str, Any]:
    """Execution time p50/p95, success rates, breakdowns and usage (the seed's contract)."""
    return pipeline_metrics(app.store.view(_now(app)), f)


@router.post("/api/agent/metrics", status_code=status.HTTP_201_CREATED)
def post_metrics(
    payload: Any = Body(...),  # noqa: B008
    app: App = Depends(get_app),  # noqa: B008
    actor: str = Depends(require_token),
) -> dict[str, Any]:
    """Store one TaskMetric or a list of them; all or nothing, 422 naming the bad fields."""
    items = payload if isinstance(payload, list) else [payload]
    bad = [i for i, item in enumerate(items) if not isinstance(item, dict)]
    if bad or not items:
        raise HTTPException(
            _UNPROCESSABLE,
            ["expected a TaskMetric JSON object or a non-empty list of them"],
        )
    report = store_records(app.store, "metrics", items, now=fmt_ts(_now(app)))
    if report.rejected:
        raise HTTPException(_UNPROCESSABLE, report.rejected)
    return {"stored": report.stored}


@router.get("/api/experiments")
def get_experiments(
    by: str = Query("prompt_variant", description="prompt_variant, skill_version or model."),
    control: str | None = Query(None, description="The control arm (default: configured)."),
    experiment: str | None = Query(None, description="A configured [experiments.<name>]."),
    f: MetricFilter = Depends(_filters),  # noqa: B008
    app: App = Depends(get_app),  # noqa: B008
) -> dict[str, Any]:
    """Compare the arms of one tag: success (Wilson, Fisher), duration (Mann–Whitney), SRM."""
    if by not in ARM_COLUMNS:
        raise HTTPException(
            _UNPROCESSABLE,
            f"query parameter 'by': expected one of {', '.join(ARM_COLUMNS)} (got {by!r})",
        )
    try:
        return compare_arms(
            app.store.view(_now(app)),
            by,
            config=app.config,
            filters=f,
            control=control,
            experiment=experiment,
        )
    except ValueError as exc:
        raise HTTPException(_UNPROCESSABLE, str(exc)) from None
    except ConfigError as exc:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, str(exc)) from None


def goal_settings(app: App) -> dict[str, Any]:
    """The goal rule's goals and progress settings from the config."""
    return app.config.goal_settings()


@router.get("/api/goals")
def get_goals(app: App = Depends(get_app)) -> dict[str, Any]:  # noqa: B008
    """Every goal's progress, counts and predicted completion."""
    s = goal_settings(app)
    view = app.store.view(_now(app))
    goals = goals_report(
        view, s["goals"], running_weight=s["running_weight"], rate_window=s["rate_window"]
    )
    return {"as_of": view.now_ts, "goals": goals}


@router.post("/api/goals", status_code=status.HTTP_201_CREATED)
def post_goal(
    payload: Any = Body(...),  # noqa: B008
    app: App = Depends(get_app),  # noqa: B008
    actor: str = Depends(require_token),
) -> dict[str, Any]:
    """Define (or redefine) a goal by id; stored in ``reviewer_goals``."""
    if not isinstance(payload, dict):
        raise HTTPException(_UNPROCESSABLE, ["expected a JSON object"])
    try:
        goal = GoalIn.model_validate(payload)
    except ValidationError as exc:
        raise HTTPException(_UNPROCESSABLE, describe_errors(exc)) from None
    at = fmt_ts(_now(app))
    with app.store.transaction():
        app.state.define_goal(
            {
                **goal.model_dump(include={"id", "title", "target", "deadline"}),
                **goal.model_dump(include={"label", "spec", "task_type"}),
            },
            at,
            actor,
        )
    shadowed = goal.id in goal_settings(app)["goals"]
    return {
        "id": goal.id,
        "stored": True,
        "note": "config.toml defines a goal with this id; the config's definition is used"
        if shadowed
        else None,
    }
