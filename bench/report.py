"""docs/benchmarks.json (the data) and docs/benchmarks.md (rendered from it), shared by every benchmark.

Other benchmarks add their figures with one call, which merges and re-renders::

    from bench.report import record
    record("import", "1M rows, PostgreSQL", {"rows_per_s": 41000, "wall_s": 24.4, "peak_rss_mib": 180})

Sections the SOAP harness writes: ``soap`` (one entry per operation), ``scaling``, ``profile``.
Sections kept for the others: ``import``, ``export``, ``rendicontazione`` (any other name works too).
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "docs" / "benchmarks.json"
SCHEMA = 1
OTHER_SECTIONS = {
    "import": "Import of dovuti flows (paaSILAutorizzaImportFlusso + upload + worker)",
    "export": "Export flows (pagati, incrementale con ricevuta, scaduti)",
    "rendicontazione": "Rendicontazione (FdR fetch, parse, matching)",
}


# --- the JSON document -------------------------------------------------------------------------------

def json_path_for(markdown: Path) -> Path:
    return markdown.with_suffix(".json")


def markdown_path_for(json_path: Path) -> Path:
    return json_path.with_suffix(".md")


def load(path: Path = DEFAULT_JSON) -> dict[str, Any]:
    if path.exists():
        data = json.loads(path.read_text())
        data.setdefault("sections", {})
        return data
    return {"schema": SCHEMA, "machine": {}, "sections": {}}


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Benchmarks of different engineers may finish at the same time: serialise read-merge-write.

    The lock is taken on the folder itself, so no lock file is left in docs/.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


def _write(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(temporary, path)
    markdown_path_for(path).write_text(render(data))


def record(section: str, name: str, figures: dict[str, Any], *, path: Path = DEFAULT_JSON) -> dict[str, Any]:
    """Merge ``figures`` into ``sections[section][name]`` (shallow update), then re-render the markdown.

    The date and commit of this measurement are stamped on the figures unless given (sections are
    measured at different times); a new measurement replaces the stamp of the one it updates.
    """
    from bench import machine

    path = Path(path)
    with _locked(path):
        data = load(path)
        entry = data["sections"].setdefault(section, {}).setdefault(name, {})
        entry.update(figures)
        if "measured" not in figures:
            entry["measured"] = {"date": machine.describe()["date"], "commit": machine.git_commit()}
        if not data.get("machine"):
            data["machine"] = machine.describe()
        _write(path, data)
    return data


def replace_sections(sections: dict[str, dict[str, Any]], machine_info: dict[str, Any], settings: dict[str, Any],
                     *, path: Path = DEFAULT_JSON) -> dict[str, Any]:
    """The SOAP harness's write: its own sections replaced whole, every other section kept."""
    path = Path(path)
    with _locked(path):
        data = load(path)
        data["schema"] = SCHEMA
        data["machine"] = machine_info
        data["settings"] = settings
        data["sections"].update(sections)
        _write(path, data)
    return data


# --- markdown ----------------------------------------------------------------------------------------

def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _machine(data: dict[str, Any]) -> str:
    m = data.get("machine") or {}
    if not m:
        return "_No run recorded yet._"
    rows = [["CPU", f"{m.get('cpu')} — {m.get('cores')} cores"], ["Memory", f"{m.get('memory_gib')} GiB"],
            ["OS", m.get("os")], ["Python", m.get("python")], ["PostgreSQL", m.get("postgresql")],
            ["SQLite", m.get("sqlite")], ["wrk", m.get("wrk")],
            ["gunicorn / Spyne / lxml / SQLAlchemy",
             f"{m.get('gunicorn')} / {m.get('spyne')} / {m.get('lxml')} / {m.get('sqlalchemy')}"],
            ["Date", m.get("date")], ["Git commit", f"`{m.get('commit')}`"]]
    if m.get("loadavg_start"):
        rows.append(["Load average (1/5/15 min) at start / end",
                     f"{m['loadavg_start']} / {m.get('loadavg_end')}"])
    text = _table(["", ""], rows)
    if m.get("loadavg_start") and max(m["loadavg_start"][0], (m.get("loadavg_end") or [0])[0]) > 0.5:
        text += ("\n\n**Warning:** other processes were using the CPU during this run (see the load average); "
                 "absolute figures are lower and noisier than on an idle host. CPU µs per request is the least "
                 "affected figure.")
    return text


def _settings(data: dict[str, Any]) -> str:
    s = data.get("settings") or {}
    if not s:
        return ""
    fast = s.get("variants", ["spyne"])
    return (f"Settings of the last run: backends {', '.join(s.get('backends', []))}; workers "
            f"{', '.join(map(str, s.get('workers', [])))} ({s.get('threads', 1)} thread(s) each); "
            f"{s.get('duration')} s per point; "
            f"{_num(s.get('db_size'))} payable dovuti seeded; server variants {', '.join(fast)}; "
            f"quick mode {'on' if s.get('quick') else 'off'}; command `{s.get('command')}`.")


def _soap(section: dict[str, Any]) -> str:
    out = []
    for name, op in section.items():
        out.append(f"### {name}\n")
        points = op.get("points", [])
        rows = []
        for p in sorted(points, key=lambda p: (p["server"] != "echo", p.get("backend", ""), p.get("variant", ""),
                                               p["workers"])):
            lat = p.get("latency_ms", {})
            label = "echo (lxml baseline)" if p["server"] == "echo" else f"gateway ({p.get('variant', 'spyne')})"
            errors = p.get("non_2xx", 0) + sum(p.get("socket_errors", {}).values())
            rows.append([label, p.get("backend") or "–", p["workers"], _num(p.get("rps")), _num(lat.get("p50"), 2),
                         _num(lat.get("p95"), 2), _num(lat.get("p99"), 2), _num(p.get("cpu_us_per_req"), 0),
                         _num(p.get("db_cpu_us_per_req"), 0),
                         f"{p['ratio_to_echo']:.2f}" if p.get("ratio_to_echo") is not None else "–", errors])
        out.append(_table(["Server", "DB", "Workers", "req/s", "p50 ms", "p95 ms", "p99 ms", "server CPU µs/req",
                           "DB CPU µs/req", "× echo req/s", "non-2xx + socket errors"], rows))
        outcomes = op.get("outcomes") or {}
        if outcomes:
            text = "; ".join(f"{backend}: " + ", ".join(f"{k} ×{v}" for k, v in dist.items())
                             for backend, dist in outcomes.items())
            out.append(f"\nWhat was measured (answers to a sample of {op.get('sample_size', '?')} requests before "
                       f"the load, response {op.get('response_bytes', '?')} bytes): {text}.")
        p80 = op.get("p99_at_80pct") or []
        if p80:
            out.append("\nLatency at about 80 % of peak throughput (fixed rate, see method):\n")
            out.append(_table(["DB", "Server", "Workers", "peak req/s", "target req/s", "achieved req/s",
                               "% of peak", "p50 ms", "p99 ms"],
                              [[r.get("backend"), r.get("variant"), r.get("workers"), _num(r.get("peak_rps")),
                                _num(r.get("target_rps")), _num(r.get("achieved_rps")),
                                _num(r.get("fraction_of_peak", 0) * 100, 0), _num(r.get("p50_ms"), 2),
                                _num(r.get("p99_ms"), 2)] for r in p80]))
        out.append("")
    return "\n".join(out)


def _profile(section: dict[str, Any]) -> str:
    out = []
    for name, prof in section.items():
        out.append(f"### {name}\n")
        out.append(f"{prof.get('requests')} requests in-process, {_num(prof.get('us_per_request'), 0)} µs of "
                   f"CPU per request under cProfile (profiling inflates absolute times; the shares matter). "
                   f"Outcome: {prof.get('outcome')}.\n")
        out.append(_table(["Where (own time, by package)", "share"],
                          [[k, f"{v * 100:.1f} %"] for k, v in prof.get("by_area", {}).items()]))
        phases = prof.get("phases", {})
        if phases:
            out.append("\nPhases of the request (cumulative time, they nest: Spyne's envelope parse is part of "
                       "its deserialise):\n")
            out.append(_table(["Phase", "share"], [[k, f"{v * 100:.1f} %"] for k, v in phases.items()]))
        own = prof.get("top_own", [])
        if own:
            out.append("\nHottest functions by own time:\n")
            out.append(_table(["function", "own share", "calls/request", "ms/call"],
                              [[f"`{t['function']}`", f"{t['share'] * 100:.1f} %", _num(t.get("calls_per_request"), 2),
                                _num(t.get("ms_per_call"), 3)] for t in own]))
        out.append("")
    return "\n".join(out)


def _scaling(section: dict[str, Any]) -> str:
    rows = []
    for name, s in section.items():
        lat = s.get("latency_ms", {})
        rows.append([name, s.get("operation"), s.get("backend"), _num(s.get("db_size")), s.get("workers"),
                     _num(s.get("rps")), _num(lat.get("p50"), 2), _num(lat.get("p99"), 2)])
    return _table(["Point", "Operation", "DB", "dovuti", "Workers", "req/s", "p50 ms", "p99 ms"], rows)


def _generic(section: dict[str, Any]) -> str:
    keys: list[str] = []
    for figures in section.values():
        keys += [k for k in figures if k not in keys and k != "measured"]
    rows = []
    for name, figures in section.items():
        cells = [name]
        for key in keys:
            value = figures.get(key)
            cells.append(json.dumps(value, default=str) if isinstance(value, (dict, list)) else _num(value))
        measured = figures.get("measured", {})
        cells.append(f"{measured.get('date', '–')} `{measured.get('commit', '–')}`")
        rows.append(cells)
    return _table(["Case"] + keys + ["measured"], rows)


METHOD = """\
Each point: the server starts under gunicorn exactly as in production (`ente-gateway serve --workers W`: sync
workers, app preloaded, JSON logs at INFO), then one `wrk` process (one thread) posts SOAP envelopes for
`duration` seconds and its latency histogram gives the percentiles. Envelopes are built once by zeep from the
reference WSDLs and filled per request by a Lua script with real seeded values: notice numbers and IUVs cycled
over a sample spread across the whole `dovuto` table, a new `receiptId` for every paSendRTV2 (each is a new
receipt), a new IUD inside the base64 `Dovuti` of every paaSILInviaDovuti, idSessions of paid carrelli for
paaSILChiediPagati. With one worker the server is pinned to core 0 (`taskset -c 0`) and wrk to core 1; with
more workers server, wrk and PostgreSQL share both cores, which is the realistic case of a 2-core host but
means wrk's own CPU is taken from the server. Connections: 4 per worker (sync workers serve one at a time and
close the connection after each answer, so wrk reconnects per request — as a SIL without keep-alive does).
Server CPU µs/req is the user+system time of gunicorn's master and workers over the run divided by the
requests; DB CPU µs/req the same for the PostgreSQL server's processes. PostgreSQL runs on the same host
(fsync and synchronous_commit off: the disk is not what is measured) and the gateway reaches it over its unix
socket, as a gateway sharing the database's host should; over TCP loopback each statement costs more CPU on
both sides.

The baseline (`bench/echo_app.py`) is a bare WSGI app under the same gunicorn settings that parses the body
with lxml and answers, for each operation, the very bytes the gateway answered to a sample request (same
size). "× echo req/s" is the gateway's throughput divided by the baseline's at the same worker count.

p99 at 80 % of peak: Debian ships wrk 4, which has no fixed-rate mode (that is wrk2's `--rate`). A second
pass emulates it with fewer connections: exactly one per worker, plus a think time drawn by wrk's Lua
`delay()` hook (exponential, mean chosen so the rate is 80 % of the peak measured at the same worker count,
corrected once when the achieved rate is more than 7 % off). More connections than workers would be wrong
here: wrk reconnects *before* its delay, and a sync worker that accepted an idle connection waits for it,
so think time would stall other requests. This is a closed loop without queueing, so its p99 is mostly
service time: a lower bound of what wrk2's open-loop load (bursts, coordinated omission corrected) would show.
"""


def render(data: dict[str, Any]) -> str:
    sections = data.get("sections", {})
    parts = ["# Benchmarks\n",
             "Generated by `python -m bench` (also `ente-gateway bench`, `make bench`) from "
             "`docs/benchmarks.json`; do not edit by hand. Other benchmarks add figures with "
             "`bench.report.record(section, name, figures)`.\n",
             "## Machine\n", _machine(data), "", _settings(data), "", "## Method\n", METHOD]
    if "soap" in sections:
        parts += ["## SOAP operations\n", _soap(sections["soap"])]
    if "profile" in sections:
        parts += ["## Where the time goes\n",
                  "cProfile of the gateway's WSGI application called in-process (the same app object a gunicorn "
                  "worker runs, no HTTP) with the same envelopes; own time grouped by package.\n",
                  _profile(sections["profile"])]
    if "scaling" in sections:
        parts += ["## Scaling with the size of the dovuto table\n", _scaling(sections["scaling"]), ""]
    for name, title in OTHER_SECTIONS.items():
        parts.append(f"## {title}\n")
        parts.append(_generic(sections[name]) if sections.get(name) else
                     f"_Not measured yet: filled by `bench.report.record(\"{name}\", ...)`._")
        parts.append("")
    for name in sorted(set(sections) - {"soap", "profile", "scaling"} - set(OTHER_SECTIONS)):
        parts += [f"## {name}\n", _generic(sections[name]), ""]
    return "\n".join(parts).rstrip() + "\n"
