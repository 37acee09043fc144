"""The review page in a real browser: an operator logs in, decides, silences, checks.

Needs Debian's chromium and the playwright package (it drives the system
browser; nothing is downloaded). Skipped where either is absent, except in CI
(CI=true), where the test must run.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reviewer.app import App
from store.timeutil import parse_ts
from tests.support import make_config, metric_rows, task_rows

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOKEN = "browser-token"


def _require_browser() -> None:
    missing = []
    if CHROMIUM is None:
        missing.append("chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install playwright)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI requires the browser test; missing: {', '.join(missing)}")
        pytest.skip(f"no browser here: missing {', '.join(missing)}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, App]]:
    _require_browser()
    import uvicorn

    from reviewer.api import create_app

    cfg = make_config(
        {
            "reviewer": {"store": f"sqlite:///{tmp_path / 'p.db'}", "api_token": TOKEN},
            "goals": {"triage": {"title": "Triage the queue", "task_type": "triage", "target": 8}},
        }
    )
    app = App.from_config(cfg)
    app.store.upsert_tasks(
        task_rows(
            [
                {
                    "id": f"t{i}",
                    "title": title,
                    "priority": "critical" if i % 2 else "high",
                    "task_type": "triage",
                    "created_at": f"2026-03-0{i}T00:00:00Z",
                }
                for i, title in enumerate(
                    [
                        "Wire the metrics endpoint",
                        "Polish the docs <script>alert(1)</script>",
                        "Pause executor runner-c",
                        "Retry the flaky importer",
                        "Index the audit log",
                    ],
                    start=1,
                )
            ]
        )
    )
    app.store.upsert_metrics(
        metric_rows(
            {
                "task_id": f"m{i}",
                "task_type": ("code", "docs", "review")[i % 3],
                "model": ("opus", "haiku")[i % 2],
                "duration_seconds": 30 + (i * 37) % 200,
                "status": "failed" if i % 7 == 0 else "completed",
                "cost_usd": 0.2 + (i % 5) / 10,
                "created_at": f"2026-03-{1 + i % 9:02d}T{i % 24:02d}:00:00Z",
            }
            for i in range(300)
        )
    )
    app.engine.review(parse_ts("2026-03-10T00:00:00Z"))
    port = _free_port()
    srv = uvicorn.Server(
        uvicorn.Config(
            create_app(app), host="127.0.0.1", port=port, log_config=None, access_log=False
        )
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "API server did not start"
    yield f"http://127.0.0.1:{port}", app
    srv.should_exit = True
    thread.join(10)
    app.close()


WIDTHS = {"wide": (1280, 900), "phone": (390, 844)}
SECTIONS = ("/", "/findings", "/runs", "/silences", "/pipeline", "/audit")


def _png_width(path: Path) -> int:
    """The pixel width of a PNG (its IHDR), i.e. the page's full scroll width."""
    return int.from_bytes(path.read_bytes()[16:20], "big")


def _assert_fits(page: Any, width: int, where: str) -> None:
    """Nothing sticks out of the viewport, and no button out of its card.

    Tables may be wider than a phone: they scroll inside their own ``.scroll`` box,
    which itself must fit."""
    visible = "header, main, nav, h1, h2, .card, .scroll, select, :is(form, svg):not(.scroll *)"
    for loc in (page.locator(visible), page.locator("button:not(.scroll button)")):
        for i in range(loc.count()):
            box = loc.nth(i).bounding_box()
            if box is None:  # not rendered (e.g. inside a closed <details>)
                continue
            assert box["x"] >= -0.5 and box["x"] + box["width"] <= width + 0.5, (
                f"{where}: element {i} of {loc} spans {box['x']:.0f}..{box['x'] + box['width']:.0f}"
                f" in a {width} px viewport"
            )
    cards = page.locator(".card")
    for i in range(cards.count()):
        card = cards.nth(i).bounding_box()
        if card is None:
            continue
        buttons = cards.nth(i).locator("button:not(.scroll button)")
        for j in range(buttons.count()):
            b = buttons.nth(j).bounding_box()
            if b is not None:
                assert b["x"] + b["width"] <= card["x"] + card["width"] + 0.5, (
                    f"{where}: a button sticks out of card {i}"
                )


@pytest.mark.slow
def test_an_operator_works_the_page(server: tuple[str, App], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from reviewer.api.auth import principal_for_token

    url, app = server
    name = principal_for_token(app, TOKEN).name  # type: ignore[union-attr]
    ids = [p.id for p in app.state.proposals(state="pending")]
    assert len(ids) >= 4
    one, two, three, four = ids[:4]
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        # Console errors other than a refused status (the wrong token's 401 is one).
        page.on(
            "console",
            lambda m: (
                errors.append(m.text)
                if m.type == "error" and not m.text.startswith("Failed to load resource")
                else None
            ),
        )
        page.goto(url + "/")
        assert page.locator("article.proposal").count() == len(ids)
        assert page.locator("button.approve").count() == 0  # nobody is logged in
        page.click("#login-link")
        page.fill("#token", "wrong")
        page.click("#login")
        page.wait_for_selector("text=That token is not known")
        page.fill("#token", TOKEN)
        page.click("#login")
        page.wait_for_selector("#logout")

        first = page.locator(f"#proposal-{one}")
        first.locator("input.reason").fill("worth doing")
        first.locator("button.approve").click()
        page.wait_for_selector(f"#proposal-{one}[data-state=scheduled]")
        assert f"#{one} scheduled as reviewer-{one}" in page.locator(".flash").inner_text()

        second = page.locator(f"#proposal-{two}")
        second.locator("input.reason").fill("not our problem")
        second.locator("button.reject").click()
        page.wait_for_selector(f"#proposal-{two}[data-state=rejected]")

        page.check(f"#proposal-{three} input.pick")
        page.check(f"#proposal-{four} input.pick")
        page.click("#bulk-approve")
        page.wait_for_selector(f"#proposal-{three}[data-state=scheduled]")
        page.wait_for_selector(f"#proposal-{four}[data-state=scheduled]")

        page.goto(url + "/silences")
        form = page.locator("#add-silence")
        form.locator("input[name=rule]").fill("stale-queue")
        form.locator("input[name=subject]").fill("t5*")
        form.locator("input[name=until]").fill("2999-01-01T00:00")
        form.locator("input[name=comment]").fill("known, fixing upstream")
        form.locator("button[type=submit]").click()
        page.wait_for_selector("#silence-1")
        assert name in page.locator("#silence-1").inner_text()

        page.goto(url + f"/audit?actor={name}")
        actions = page.locator("td.action").all_inner_texts()
        assert actions.count("proposal.scheduled") == 3 and "proposal.rejected" in actions
        assert "silence.added" in actions

        for label, (width, height) in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": height})
            for section in SECTIONS:
                page.goto(url + section)
                shot = tmp_path / f"{label}{section.replace('/', '-') or '-'}.png"
                page.screenshot(path=str(shot), full_page=True)
                assert _png_width(shot) == width, f"{section} overflows at {width} px"
                if label == "phone":
                    _assert_fits(page, width, section)
        assert not errors, errors  # e.g. a CSP violation
        browser.close()

    for pid in (one, three, four):
        assert app.store.get_task(f"reviewer-{pid}") is not None
    assert app.store.get_task(f"reviewer-{two}") is None
    trail = app.state.audit_log(one)
    assert ("proposal.approved", name, "worth doing") in {
        (a["action"], a["actor"], a["reason"]) for a in trail
    }
    assert app.state.proposal(two).reason == "not our problem"
    assert app.state.proposal(two).decided_by == name
