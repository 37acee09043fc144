"""``/api/experiments``: A/B comparisons."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, status

from reviewer.api.common import UNPROCESSABLE, now_of, run_filters
from reviewer.api.deps import get_app
from reviewer.app import App
from reviewer.config import ConfigError
from reviewer.experiments import compare_arms
from store import ARM_COLUMNS, MetricFilter

router = APIRouter()


@router.get("/api/experiments")
def get_experiments(
    by: str = Query("prompt_variant", description="prompt_variant, skill_version or model."),
    control: str | None = Query(None, description="The control arm (default: configured)."),
    experiment: str | None = Query(None, description="A configured [experiments.<name>]."),
    f: MetricFilter = Depends(run_filters),  # noqa: B008
    app: App = Depends(get_app),  # noqa: B008
) -> dict[str, Any]:
    """Compare the arms of one tag: success (Wilson, Fisher), duration (Mann–Whitney), SRM."""
    if by not in ARM_COLUMNS:
        raise HTTPException(
            UNPROCESSABLE,
            f"query parameter 'by': expected one of {', '.join(ARM_COLUMNS)} (got {by!r})",
        )
    try:
        return compare_arms(
            app.store.view(now_of(app)),
            by,
            config=app.config,
            filters=f,
            control=control,
            experiment=experiment,
        )
    except ValueError as exc:
        raise HTTPException(UNPROCESSABLE, str(exc)) from None
    except ConfigError as exc:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, str(exc)) from None
