"""``/api/goals``: goal progress (read) and goals defined over the API (write)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, status
from pydantic import ValidationError

from reviewer.api.auth import Principal
from reviewer.api.common import UNPROCESSABLE, now_of
from reviewer.api.deps import get_app, require_scope
from reviewer.app import App
from store.goals import GoalIn, goals_overview
from store.records import describe_errors
from store.timeutil import fmt_ts

router = APIRouter()


def goal_settings(app: App) -> dict[str, Any]:
    """The goal rule's goals and progress settings from the config."""
    return app.config.goal_settings()


@router.get("/api/goals")
def get_goals(app: App = Depends(get_app)) -> dict[str, Any]:  # noqa: B008
    """Every goal's progress, counts and predicted completion."""
    return goals_overview(app.store.view(now_of(app)), goal_settings(app))


@router.post("/api/goals", status_code=status.HTTP_201_CREATED)
def post_goal(
    payload: Any = Body(...),  # noqa: B008
    app: App = Depends(get_app),  # noqa: B008
    principal: Principal = Depends(require_scope("admin")),  # noqa: B008
) -> dict[str, Any]:
    """Define (or redefine) a goal by id; stored in ``reviewer_goals``."""
    if not isinstance(payload, dict):
        raise HTTPException(UNPROCESSABLE, ["expected a JSON object"])
    try:
        goal = GoalIn.model_validate(payload)
    except ValidationError as exc:
        raise HTTPException(UNPROCESSABLE, describe_errors(exc)) from None
    at = fmt_ts(now_of(app))
    with app.store.transaction():
        app.state.define_goal(
            {
                **goal.model_dump(include={"id", "title", "target", "deadline"}),
                **goal.model_dump(include={"label", "spec", "task_type"}),
            },
            at,
            principal.name,
        )
    shadowed = goal.id in goal_settings(app)["goals"]
    return {
        "id": goal.id,
        "stored": True,
        "note": "config.toml defines a goal with this id; the config's definition is used"
        if shadowed
        else None,
    }
