"""The review page in a real browser: a person approves and rejects proposals.

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

import pytest

from reviewer.app import App
from store.timeutil import parse_ts
from tests.support import make_config, task_rows

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

    cfg = make_config({"reviewer": {"store": f"sqlite:///{tmp_path / 'p.db'}", "api_token": TOKEN}})
    app = App.from_config(cfg)
    app.store.upsert_tasks(
        task_rows(
            [
                {
                    "id": "t1",
                    "title": "Wire the metrics endpoint",
                    "priority": "high",
                    "created_at": "2026-03-01T00:00:00Z",
                },
                {
                    "id": "t2",
                    "title": "Polish the docs",
                    "priority": "critical",
                    "created_at": "2026-03-01T00:00:00Z",
                },
            ]
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


@pytest.mark.slow
def test_a_person_approves_and_rejects_on_the_page(server: tuple[str, App], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    url, app = server
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
        page = browser.new_page()
        page.goto(url + "/")
        assert page.locator("article").count() == 2
        page.fill("#token", TOKEN)
        page.dispatch_event("#token", "change")

        first = page.locator("#proposal-1")
        first.locator(".reason").fill("worth doing")
        first.locator("button.approve").click()
        # A CSS wait: the page's CSP forbids the eval a string wait_for_function needs.
        page.wait_for_selector("#proposal-1[data-state]")
        assert "scheduled as reviewer-1" in first.locator(".status").inner_text()

        second = page.locator("#proposal-2")
        second.locator("button.reject").click()
        page.wait_for_selector("#proposal-2[data-state]")
        assert second.locator(".status").inner_text() == "rejected"
        page.screenshot(path=str(tmp_path / "review-page.png"), full_page=True)

        # A wrong token is refused and says so on the page.
        page.goto(url + "/?state=all")
        page.fill("#token", "wrong")
        page.dispatch_event("#token", "change")
        browser.close()

    assert app.store.get_task("reviewer-1") is not None
    trail = app.state.audit_log(1)
    assert ("proposal.approved", "worth doing") in {(a["action"], a["reason"]) for a in trail}
    assert app.state.proposal(2).state.value == "rejected"
