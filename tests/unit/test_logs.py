"""Structured logs: JSON lines with the request's id and fields, secrets and payloads masked."""

from __future__ import annotations

import io
import json
import sys

import pytest
import structlog

from gateway import logs


@pytest.fixture
def json_lines(monkeypatch: pytest.MonkeyPatch):
    sink = io.StringIO()
    monkeypatch.setattr(sys, "stderr", sink)
    logs.configure_logging("json", "INFO")  # binds sys.stderr: the sink
    yield lambda: [json.loads(line) for line in sink.getvalue().splitlines() if line.strip()]
    structlog.contextvars.clear_contextvars()
    monkeypatch.undo()
    logs.configure_logging("console", "INFO")


def test_secrets_and_payloads_are_masked_whatever_their_spelling(json_lines) -> None:
    logs.start_request("r-1", path="/ente")
    logs.get_logger("t").info("call", password="s3cret", authorizationToken="tok", Dovuti="PD94bWw=",
                              station_password="x", **{"secret-key": "k"}, iud="IUD1")
    (line,) = json_lines()
    assert line["password"] == line["authorizationToken"] == line["Dovuti"] == "***"
    assert line["station_password"] == line["secret-key"] == "***"
    assert line["iud"] == "IUD1" and line["request_id"] == "r-1" and line["path"] == "/ente"
    assert "s3cret" not in json.dumps(line)


def test_bound_request_fields_reach_every_line_and_a_new_request_starts_clean(json_lines) -> None:
    logs.start_request("r-2")
    logs.bind_request(operation="paVerifyPaymentNotice", cod_ipa_ente=None)
    logs.get_logger("t").info("one")
    logs.start_request("r-3")
    logs.get_logger("t").info("two")
    first, second = json_lines()
    assert first["operation"] == "paVerifyPaymentNotice" and "cod_ipa_ente" not in first
    assert second["request_id"] == "r-3" and "operation" not in second


def test_request_ids_are_kept_when_sane_and_made_otherwise() -> None:
    assert logs.new_request_id("abc-123") == "abc-123"
    made = logs.new_request_id("bad id; drop table")
    assert len(made) == 32 and int(made, 16) >= 0
    assert logs.new_request_id(None) != logs.new_request_id(None)
