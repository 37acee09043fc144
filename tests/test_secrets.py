"""Secrets never reach a person: store passwords and tokens are masked in every output.

The masking lives in one place, ``store.secrets.redact``, called by the log
formatters, the command line's error layer, the engine's run errors (shown by
``runs``, ``/healthz`` and ``--json``) and the API's error handlers.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from reviewer.api import create_app
from reviewer.app import App
from reviewer.cli import cli
from reviewer.config import config_from_dict
from reviewer.logs import HumanFormatter, JSONFormatter
from store import StoreError
from store.secrets import redact, register

PASSWORD = "hunter2"
PG_URL = f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/x"
HTTP_URL = f"http://bob:{PASSWORD}@127.0.0.1:1/api"
API_TOKEN = "tok-api-9f3e1c"
STORE_TOKEN = "tok-store-77ab20"


@pytest.fixture(autouse=True)
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVIEWER_API_TOKEN", API_TOKEN)
    monkeypatch.setenv("REVIEWER_STORE_TOKEN", STORE_TOKEN)


def assert_clean(text: str) -> None:
    for secret in (PASSWORD, API_TOKEN, STORE_TOKEN):
        assert secret not in text, text


def test_redact_masks_urls_parameters_bearers_and_known_tokens() -> None:
    text = (
        f"at {PG_URL} and {HTTP_URL}; dsn host=h password={PASSWORD} user=u; "
        f"Authorization: Bearer abc.def; env {API_TOKEN} {STORE_TOKEN}"
    )
    out = redact(text)
    assert_clean(out)
    assert "abc.def" not in out
    assert "postgresql://postgres:***@127.0.0.1:1/x" in out
    assert "http://bob:***@127.0.0.1:1/api" in out
    register("config-token-1234")
    assert redact("x config-token-1234 y") == "x *** y"
    assert redact("no secret here: http://host/api") == "no secret here: http://host/api"


def test_log_lines_are_masked_json_and_human() -> None:
    record = logging.makeLogRecord(
        {
            "msg": "cannot open %s with token %s",
            "args": (PG_URL, API_TOKEN),
            "levelname": "ERROR",
            "name": "reviewer",
            "store": HTTP_URL,  # an ``extra=`` field
        }
    )
    for fmt in (JSONFormatter(), HumanFormatter()):
        assert_clean(fmt.format(record))
    try:
        raise StoreError(f"connect failed for {PG_URL}")
    except StoreError:
        import sys

        record.exc_info = sys.exc_info()
    for fmt in (JSONFormatter(), HumanFormatter()):
        assert_clean(fmt.format(record))


@pytest.fixture(autouse=True)
def _one_try_at_an_unreachable_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline here is never reachable: one try each, not the default backoff."""
    cfg = tmp_path / "one-try.toml"
    cfg.write_text("[reviewer]\nhttp_attempts = 1\n", encoding="utf-8")
    monkeypatch.setenv("REVIEWER_CONFIG", str(cfg))


@pytest.mark.parametrize("url", [PG_URL, HTTP_URL])
@pytest.mark.parametrize(
    "args",
    [
        ["review", "--once"],
        ["review", "--once", "--json"],
        ["runs", "list"],
        ["runs", "list", "--json"],
        ["config", "check"],
        ["config", "check", "--json"],
    ],
)
def test_cli_outputs_never_show_the_password_or_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the HTTP store's mirror lands here
    result = CliRunner().invoke(cli, ["--store", url, *args])
    assert_clean(result.stdout + result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_http_store_run_errors_are_masked_in_the_run_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unreachable pipeline's error is stored with the run, then shown by runs list."""
    monkeypatch.chdir(tmp_path)
    CliRunner().invoke(cli, ["--store", HTTP_URL, "review", "--once"])
    result = CliRunner().invoke(cli, ["--store", HTTP_URL, "runs", "list", "--json"])
    assert result.exit_code == 0, result.stderr
    runs = json.loads(result.stdout)
    assert runs and "127.0.0.1" in json.dumps(runs)  # the error is there, masked
    assert_clean(result.stdout)


def test_api_error_bodies_and_healthz_are_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = config_from_dict(
        {"reviewer": {"store": HTTP_URL, "api_token": "cfg-token-5150", "http_attempts": 1}}
    )
    app = App.from_config(cfg)
    app.engine.review()  # the pipeline is unreachable: the run records the error
    api = create_app(app)

    @api.get("/boom")
    def boom() -> None:
        raise StoreError(f"cannot reach {PG_URL} with {API_TOKEN} and cfg-token-5150")

    with TestClient(api) as c:
        body = c.get("/boom").text
        assert "cannot reach" in body
        assert_clean(body)
        assert "cfg-token-5150" not in body
        health = c.get("/healthz").text
        assert "127.0.0.1" in health
        assert_clean(health)
    app.close()


def test_daemon_start_on_an_unreachable_store_is_masked() -> None:
    result = CliRunner().invoke(cli, ["--store", PG_URL, "run", "--no-api"])
    assert result.exit_code == 1
    assert "postgres:***@" in result.stderr
    assert_clean(result.stdout + result.stderr)


def test_cli_error_layer_masks_exception_messages(capsys: pytest.CaptureFixture[str]) -> None:
    from reviewer.cli.base import handled

    with pytest.raises(SystemExit), handled():
        raise ValueError(f"bad value near {PG_URL} {API_TOKEN}")
    err = capsys.readouterr().err
    assert "bad value near" in err
    assert_clean(err)
