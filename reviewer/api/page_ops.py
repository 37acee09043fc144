"""The review page's operator sections: ``/controls`` (what the pipeline obeys, and
lifting it) and ``/report`` (the precision ledger, breakers and tuning hints).

Both forms change state as the API's routes do (``POST /api/controls/{id}/lift``,
``POST /api/rules/{rule}/reset-breaker``): they need the ``admin`` scope, a
reason, and are audited under the logged-in principal's name.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from reviewer.api import websession
from reviewer.api.common import now_of
from reviewer.api.deps import get_app
from reviewer.api.guard import RowId
from reviewer.api.page import ADMIN_SCOPE, back_to, decider, page_response
from reviewer.app import App
from store.state import NotFound
from store.timeutil import fmt_ts

router = APIRouter()

LIFTED_SHOWN = 50  # recently lifted (or expired) controls on the page


# -- controls ------------------------------------------------------------------------------
@router.get("/controls", response_class=HTMLResponse)
def controls_page(request: Request, a: App = Depends(get_app)) -> HTMLResponse:  # noqa: B008
    at = fmt_ts(now_of(a))
    active = [c.public(at) for c in a.state.controls(at, limit=500)]
    recent = a.state.controls(at, include_lifted=True, limit=500 + LIFTED_SHOWN)
    ended = [c.public(at) for c in recent if c.status(at) != "active"][:LIFTED_SHOWN]
    return page_response(
        request,
        a,
        "controls.html",
        "/controls",
        active=active,
        ended=ended,
        counts=a.state.active_control_counts(at),
        as_of=at,
    )


@router.post("/controls/{control_id}/lift")
async def lift_control(
    request: Request,
    control_id: RowId,
    a: App = Depends(get_app),  # noqa: B008
) -> Response:
    session, form = await decider(request, ADMIN_SCOPE)
    reason = websession.first(form, "reason")[:2000]
    if not reason:
        session.flash.append(("error", f"control #{control_id} not lifted: give a reason."))
        return back_to("/controls")
    try:
        with a.store.transaction():
            c, changed = a.state.lift_control(
                control_id, by=session.principal.name, at=fmt_ts(now_of(a)), reason=reason
            )
    except NotFound as exc:
        session.flash.append(("error", str(exc)))
        return back_to("/controls")
    if changed:
        session.flash.append(("ok", f"control #{c.id} ({c.kind.value} {c.target}) lifted"))
    else:
        session.flash.append(("error", f"control #{c.id} was already lifted at {c.lifted_at}"))
    return back_to("/controls")


# -- report --------------------------------------------------------------------------------
def _has_data(r: dict[str, Any]) -> bool:
    return bool(r["findings"] or r["proposals"] or r["breaker"])


@router.get("/report", response_class=HTMLResponse)
def report_page(
    request: Request,
    hints: bool = Query(False),
    a: App = Depends(get_app),  # noqa: B008
) -> HTMLResponse:
    from reviewer.ledger import HINT_WINDOW, ledger
    from store.timeutil import fmt_duration

    # Hints replay the store's history (a backtest per noisy rule): only on request.
    report = ledger(a, hints=hints)
    rules = report["rules"]
    return page_response(
        request,
        a,
        "report.html",
        "/report",
        report=report,
        active=[r for r in rules if _has_data(r)],
        quiet=[r["rule"] for r in rules if not _has_data(r)],
        breakers=[r for r in rules if r["breaker"]],
        hints=hints,
        hinted=[r for r in rules if r["hint"]],
        hint_window=fmt_duration(HINT_WINDOW),
    )


@router.post("/report/breakers/{rule_id}/reset")
async def reset_breaker(
    request: Request,
    rule_id: str,
    a: App = Depends(get_app),  # noqa: B008
) -> Response:
    session, form = await decider(request, ADMIN_SCOPE)
    reason = websession.first(form, "reason")[:2000]
    if not reason:
        session.flash.append(("error", f"the breaker of {rule_id} not reset: give a reason."))
        return back_to("/report")
    try:
        with a.store.transaction():
            row = a.state.reset_breaker(
                rule_id[:200], by=session.principal.name, at=fmt_ts(now_of(a)), reason=reason
            )
    except NotFound as exc:
        session.flash.append(("error", str(exc)))
        return back_to("/report")
    session.flash.append(
        (
            "ok",
            f"reset the breaker of {rule_id} (tripped at {row['tripped_at']}); "
            "its configured approval applies again",
        )
    )
    return back_to("/report")
