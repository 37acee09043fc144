"""``/``: the review page."""

from __future__ import annotations

import jinja2
from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from reviewer.api.deps import get_app
from reviewer.app import App

router = APIRouter()


_pages = jinja2.Environment(
    loader=jinja2.PackageLoader("reviewer", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
)


@router.get("/", response_class=HTMLResponse)
def page(
    state: str = "pending",
    a: App = Depends(get_app),  # noqa: B008
) -> HTMLResponse:
    items = a.state.proposals(state=None if state == "all" else state, limit=200)
    counts = a.state.proposal_state_counts()
    html = _pages.get_template("web/index.html").render(
        proposals=[p.public() for p in items],
        counts=counts,
        state=state,
        last_run=a.state.last_run(),
        open_findings=len(a.state.list_findings("open", None, 5000)),
        token_required=bool(a.config.api_tokens()),
    )
    return HTMLResponse(html)
