"""Fixtures the test modules share (helpers that are not fixtures live in tests/support.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from reviewer.app import App
from reviewer.config import Config
from store import Store
from store.sqlite import SQLiteStore

# bench/ is not in the wheel; tests that need the simulator's judged labels import its
# labeller (``from sim_labels import simulate_labelled``), so it goes on the path here.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

RouterClient = Callable[..., AbstractContextManager[TestClient]]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """An empty SQLite store in the test's own folder (a module may define its own)."""
    s = SQLiteStore(tmp_path / "pipeline.db")
    yield s
    s.close()


@pytest.fixture
def router_client() -> RouterClient:
    """Serve some API routers for one opened reviewer at a fixed instant:
    ``with router_client(cfg, store, now, router) as client: ...``."""

    @contextmanager
    def serve(
        cfg: Config, store: Store, now: datetime, *routers: APIRouter
    ) -> Iterator[TestClient]:
        api = FastAPI()
        api.state.reviewer = App(cfg, store, clock=lambda: now)
        for router in routers:
            api.include_router(router)
        with TestClient(api) as client:
            yield client

    return serve
