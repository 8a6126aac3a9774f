"""The benchmark harness end to end, in --quick mode on SQLite for one operation (skipped without wrk).

Also the report API other benchmarks use: record() merges a section into the JSON and re-renders the markdown.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report
from bench.envelopes import IUD_WIDTH, Identity, Values, build_operations, fill
from bench.wrk import parse_text

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (apt-get install -y wrk)")
def test_quick_run_writes_the_expected_report(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--operations", "paVerifyPaymentNotice", "--duration", "2",
         "--no-profile", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]

    data = json.loads(out.with_suffix(".json").read_text())
    assert data["machine"]["cores"] >= 1 and data["machine"]["python"]
    assert data["settings"]["backends"] == ["sqlite"] and data["settings"]["workers"] == [1]
    operation = data["sections"]["soap"]["paVerifyPaymentNotice"]
    servers = {point["server"] for point in operation["points"]}
    assert servers == {"gateway", "echo"}
    for point in operation["points"]:
        assert point["workers"] == 1 and point["requests"] > 0 and point["rps"] > 0
        assert {"p50", "p90", "p95", "p99"} <= set(point["latency_ms"])
        assert point["latency_ms"]["p50"] <= point["latency_ms"]["p99"]
        assert point["cpu_us_per_req"] > 0
        assert point["ratio_to_echo"] is not None
    # The sample says what the gateway answered (OK, or the fault code of an operation not finished yet).
    [outcomes] = operation["outcomes"].values()  # one backend, one server variant
    assert sum(outcomes.values()) == operation["sample_size"]
    assert operation["response_bytes"] > 0
    [rate] = operation["p99_at_80pct"]
    assert rate["achieved_rps"] > 0 and rate["p99_ms"] is not None

    markdown = out.read_text()
    assert "## Machine" in markdown and "### paVerifyPaymentNotice" in markdown
    assert "echo (lxml baseline)" in markdown and "Not measured yet" in markdown


def test_record_merges_sections_and_renders(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.json"
    report.record("import", "10k rows sqlite", {"rows_per_s": 1234.5, "wall_s": 8.1}, path=path)
    report.record("import", "10k rows sqlite", {"peak_rss_mib": 90}, path=path)
    report.record("export", "pagati 100k", {"rows_per_s": 50000}, path=path)
    report.replace_sections({"soap": {}}, {"cpu": "x", "cores": 2}, {"backends": ["sqlite"]}, path=path)

    data = json.loads(path.read_text())
    entry = data["sections"]["import"]["10k rows sqlite"]
    assert entry["rows_per_s"] == 1234.5 and entry["peak_rss_mib"] == 90 and "measured" in entry
    assert data["sections"]["export"]["pagati 100k"]["rows_per_s"] == 50000
    markdown = path.with_suffix(".md").read_text()
    assert "10k rows sqlite" in markdown and "1,234.5" in markdown and "pagati 100k" in markdown
    assert 'record("rendicontazione"' in markdown


def test_a_new_measurement_replaces_the_stamp_of_the_one_it_updates(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.json"
    old = {"date": "2000-01-01 00:00 UTC", "commit": "0000000"}
    report.record("import", "1M rows", {"rows_per_s": 1, "measured": old}, path=path)
    report.record("import", "1M rows", {"rows_per_s": 2}, path=path)
    entry = json.loads(path.read_text())["sections"]["import"]["1M rows"]
    assert entry["rows_per_s"] == 2 and entry["measured"] != old and entry["measured"]["commit"]


def test_envelopes_fill_every_slot_with_valid_base64_dovuti() -> None:
    import base64
    import re

    from lxml import etree

    operations = build_operations(Identity("80012345678", "C_BENCH", "Bench-password-1", "99999000013",
                                           "99999000013_01", "IT60X0542811101000000123456", __import__("decimal")
                                           .Decimal("100.00")))
    values = Values([("301000000000000199", "01000000000000199")], ["abc-123"], tag="a1b2c3")
    for operation in operations.values():
        body = fill(operation, values())
        assert b"{{" not in body
        etree.fromstring(body)  # well-formed
    body = fill(operations["paaSILInviaDovuti"], values())
    dovuti = base64.b64decode(re.search(rb"<dovuti>([^<]+)</dovuti>", body).group(1))
    iud = re.search(rb"<identificativoUnivocoDovuto>([^<]+)<", dovuti).group(1)
    assert len(iud) == IUD_WIDTH and etree.fromstring(dovuti) is not None


def test_wrk_text_summary_is_parsed() -> None:
    output = """Running 2s test @ http://127.0.0.1:1/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms  500.00us  12.00ms   90.00%
  Latency Distribution
     50%    1.10ms
     75%    1.40ms
     90%    2.00ms
     99%    5.50ms
  3000 requests in 2.00s, 1.20MB read
  Non-2xx or 3xx responses: 7
Requests/sec:   1500.00
"""
    result = parse_text(output)
    assert result.requests == 3000 and result.rps == 1500.0 and result.non_2xx == 7
    assert result.latency_ms == {"p50": 1.1, "p75": 1.4, "p90": 2.0, "p99": 5.5}
