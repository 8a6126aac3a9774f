"""Throughput of the flussi on PostgreSQL: import of a generated N-row flow, then export of N paid rows.

    python -m bench.flussi_bench                 # N = 100,000
    python -m bench.flussi_bench --million       # N = 1,000,000
    python -m bench.flussi_bench --rows 20000 --no-record --profile /tmp/prof

A throwaway cluster is started (bench/postgres.py), a fresh database migrated, the flow generated with
bench/flussi_gen.py and booked as an upload would be; the import and the export then each run as the
worker runs them (``jobs.run_one`` -> the registered handler) in a child process of their own, so its
wall time, CPU time and peak RSS are the job's alone. Figures go to bench/report.py, else stdout as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
COD_IPA_IMPORT = "C_FBIMP"
COD_IPA_EXPORT = "C_FBEXP"
SECRET = "bench-secret-key-0123456789abcdef"
PAID_ON = date(2030, 3, 10)


# --- child: one job, measured from inside ------------------------------------------------------------

def _child(args: argparse.Namespace) -> None:
    """Run the one queued job of ``args.kind`` exactly as gateway/worker.py would, and report on it."""
    from gateway import jobs
    from gateway.flussi import bookings
    from gateway.flussi import tasks as _tasks  # noqa: F401 - registers the handlers, as the worker does
    from gateway.settings import Settings
    from storage.db import Database

    settings = Settings(database_url=args.url, data_dir=Path(args.data_dir), secret_key=SECRET)
    database = Database(settings.database_url)
    kind = bookings.IMPORT_JOB if args.child == "import" else bookings.EXPORT_JOB
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    start_cpu = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    ran = jobs.run_one(database, [kind], settings=settings)
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    database.dispose()
    print(json.dumps({"ran": ran, "wall_s": wall, "user_s": usage.ru_utime - start_cpu.ru_utime,
                      "sys_s": usage.ru_stime - start_cpu.ru_stime, "peak_rss_mib": _peak_rss_mib(usage)}))


def _peak_rss_mib(usage: resource.struct_rusage) -> float:
    """This process's own high-water mark (VmHWM): Linux carries ru_maxrss over from the parent at fork."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return usage.ru_maxrss / 1024


# --- parent ----------------------------------------------------------------------------------------

def _server_cpu(cluster) -> float:  # noqa: ANN001
    """CPU seconds used so far by the cluster's processes (postmaster and backends), when psutil is there."""
    try:
        import psutil
    except ModuleNotFoundError:
        return 0.0
    pid = cluster.postmaster_pid()
    if pid is None:
        return 0.0
    total = 0.0
    try:
        root = psutil.Process(pid)
        for process in [root] + root.children(recursive=True):
            try:
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return total


def _run_child(kind: str, url: str, data_dir: Path, cluster, profile: str | None) -> dict[str, Any]:  # noqa: ANN001
    before = _server_cpu(cluster)
    command = [sys.executable, "-m", "bench.flussi_bench", "--child", kind, "--url", url, "--data-dir", str(data_dir)]
    # e.g. FLUSSI_BENCH_WRAP="py-spy record -o /tmp/import.svg --" to sample every thread of the child.
    command = shlex.split(os.environ.get("FLUSSI_BENCH_WRAP", "")) + command
    if profile:
        command += ["--profile", profile]
    env = dict(os.environ, ENTE_GATEWAY_LOG_LEVEL="WARNING")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{done.stderr[-4000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    if not figures.pop("ran"):
        raise RuntimeError(f"{kind}: no job was queued")
    figures["server_cpu_s"] = _server_cpu(cluster) - before
    return figures


def _setup(cluster, name: str) -> str:  # noqa: ANN001
    from storage.migrate import upgrade

    cluster.admin(f"CREATE DATABASE {name}")
    url = cluster.url(name)
    upgrade(url)
    return url


def _ente(database, cod_ipa: str, fiscal_code: str) -> None:  # noqa: ANN001
    from gateway.enti.registry import NewEnte, add_ente, add_tipo_dovuto

    with database.transaction() as session:
        add_ente(session, NewEnte(cod_ipa=cod_ipa, fiscal_code=fiscal_code, name=f"Comune di {cod_ipa}",
                                  password="Bench-password-1", segregation_code="01"))
        for code in ("TARI", "MENSA"):
            add_tipo_dovuto(session, cod_ipa, code, f"Tipo {code}", "IT60X0542811101000000123456", "9/0101100IM/")


def _book_import(database, settings, flow_path: Path) -> int:  # noqa: ANN001
    """What the upload route does once the zip has arrived: booking, file in place, job queued."""
    from gateway.enti.registry import get_ente
    from gateway.flussi import bookings, files
    from storage.types import utcnow

    with database.transaction() as session:
        ente = get_ente(session, COD_IPA_IMPORT)
        flow = bookings.new_import(session, ente)
        relative = files.upload_dir(ente.cod_ipa, flow.request_token) / "upload.zip"
        target = files.absolute(settings, relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(flow_path, target)
        bookings.attach_upload(session, flow, flow_path.name, str(relative), utcnow())
        return flow.id


def seed_paid(database, rows: int) -> None:  # noqa: ANN001
    """``rows`` paid positions of the export ente, built server-side (dovuto, receipt, receipt_payment).

    Texts vary and some start with = or @ or hold quotes, so the export's quoting and formula neutralisation
    do their real work.
    """
    from sqlalchemy import text

    from gateway.enti.registry import get_ente

    with database.transaction() as session:
        ente = get_ente(session, COD_IPA_EXPORT)
        tipo = session.scalar(text("SELECT id FROM tipo_dovuto WHERE ente_id = :e AND code = 'TARI'"), {"e": ente.id})
        params = {"e": ente.id, "t": tipo, "n": rows, "fc": ente.fiscal_code, "name": ente.name,
                  "paid": datetime(2030, 3, 10, 11, 30, tzinfo=timezone.utc), "day": PAID_ON}
        session.execute(text("""
            INSERT INTO dovuto (ente_id, tipo_dovuto_id, iud, iuv, notice_number, iuv_generated, state, payer_type,
                payer_code, payer_name, payer_address, payer_civic, payer_postal_code, payer_city, payer_province,
                payer_country, payer_email, amount, causale, dati_specifici_riscossione, tipo_versamento, bilancio,
                created_at, updated_at)
            SELECT :e, :t, 'EXP-' || lpad(g::text, 8, '0'), '0100' || lpad(g::text, 13, '0'),
                   '30100' || lpad(g::text, 13, '0'), false, 'COMPLETATO', 'F', 'RSSMRA80A01H501U',
                   CASE WHEN g % 97 = 0 THEN '=cmd|'' /C calc''!A0' ELSE 'Mario Rossi ' || g END,
                   'Via Roma ' || (g % 200), (g % 50)::text, '30100', 'Venezia', 'VE', 'IT',
                   'mario.' || g || '@example.org', (100 + g % 5000) / 100.0,
                   CASE WHEN g % 89 = 0 THEN '@SUM(1+1) "quoted"' ELSE 'TARI 2030 rata ' || (g % 4) || '; utenza ' || g END,
                   '9/0101100IM/', 'ALL', NULL, now(), now()
            FROM generate_series(1, :n) AS g"""), params)
        session.execute(text("""
            INSERT INTO receipt (ente_id, dovuto_id, fiscal_code, receipt_id, iuv, notice_number, ccp, source, outcome,
                esito_code, amount, fee, paid_at, psp_id, psp_name, payer, tipo_firma, raw, flags, deliveries,
                last_delivery_at, created_at, updated_at)
            SELECT :e, d.id, :fc, 'R' || d.iuv, d.iuv, d.notice_number, 'R' || d.iuv, 'paSendRTV2', 'OK', '0',
                   d.amount, 1.00, :paid, 'ABI03069', 'Banca Esempio',
                   json_build_object('type', 'F', 'code', 'RSSMRA80A01H501U', 'name', d.payer_name,
                                     'address', d.payer_address, 'civic', d.payer_civic, 'postal_code', '30100',
                                     'city', 'Venezia', 'province', 'VE', 'country', 'IT', 'email', d.payer_email),
                   NULL, convert_to('<receipt>' || d.iuv || '</receipt>', 'UTF8'), '[]', 1, now(), now(), now()
            FROM dovuto d WHERE d.ente_id = :e"""), params)
        session.execute(text("""
            INSERT INTO receipt_payment (receipt_id, index, iuv, iur, amount, fiscal_code_pa, iban, causale,
                dati_specifici_riscossione, outcome_date)
            SELECT r.id, 1, r.iuv, r.receipt_id, r.amount, :fc, 'IT60X0542811101000000123456', d.causale,
                   '9/0101100IM/', :day
            FROM receipt r JOIN dovuto d ON d.id = r.dovuto_id WHERE r.ente_id = :e"""), params)
    # Settled before the export is timed: statistics, and no autovacuum of the fresh rows during the run.
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")


def _book_export(database, version: str, with_receipts: bool) -> int:  # noqa: ANN001
    from gateway.enti.registry import get_ente
    from gateway.flussi import bookings

    day = datetime(PAID_ON.year, PAID_ON.month, PAID_ON.day, tzinfo=timezone.utc)
    with database.transaction() as session:
        ente = get_ente(session, COD_IPA_EXPORT)
        flow = bookings.new_export(session, ente, kind="pagati", date_from=day, date_to=day, tipi_dovuto=None,
                                   version=version, with_receipts=with_receipts)
        return flow.id


def _rates(rows: int, figures: dict[str, Any]) -> dict[str, Any]:
    cpu = figures["user_s"] + figures["sys_s"]
    out = {"rows": rows, "rows_per_s": round(rows / figures["wall_s"]), "wall_s": round(figures["wall_s"], 2),
           "client_cpu_s": round(cpu, 2), "rows_per_client_cpu_s": round(rows / cpu) if cpu else None,
           "server_cpu_s": round(figures["server_cpu_s"], 2), "peak_rss_mib": round(figures["peak_rss_mib"], 1)}
    return out


def run(rows: int, *, bad: float, genera_iuv: float, version: str, export_version: str, with_receipts: bool,
        profile_dir: Path | None) -> dict[str, Any]:
    from sqlalchemy import select

    from bench.postgres import start_cluster
    from bench.flussi_gen import generate
    from gateway.settings import Settings
    from storage.db import Database
    from storage.models import ExportFlow, ImportFlow

    work = Path(tempfile.mkdtemp(prefix="flussi-bench-"))
    cluster = start_cluster()
    try:
        url = _setup(cluster, "flussi_bench")
        database = Database(url)
        settings = Settings(database_url=url, data_dir=work / "data", secret_key=SECRET)
        _ente(database, COD_IPA_IMPORT, "80099000011")
        _ente(database, COD_IPA_EXPORT, "80099000022")

        started = time.perf_counter()
        flow = generate(work, COD_IPA_IMPORT, "BENCH1", rows, version=version, bad=bad, genera_iuv=genera_iuv)
        generated_s = time.perf_counter() - started
        import_id = _book_import(database, settings, flow.path)
        figures = _run_child("import", url, settings.data_dir, cluster,
                             str(profile_dir / "import.prof") if profile_dir else None)
        with database.sessions() as session:
            done = session.scalar(select(ImportFlow).where(ImportFlow.id == import_id))
        if (done.state, done.rows_imported, done.rows_rejected) != \
                ("IMPORT_ESEGUITO", len(flow.good_iuds), len(flow.bad_rows)):
            raise RuntimeError(f"import ended {done.state} {done.rows_imported}/{done.rows_rejected}")
        result_import = _rates(rows, figures)
        result_import.update(rejected=done.rows_rejected, version=version, genera_iuv_share=genera_iuv,
                             generate_s=round(generated_s, 1), zip_mib=round(flow.path.stat().st_size / 2**20, 1))

        started = time.perf_counter()
        seed_paid(database, rows)
        seeded_s = time.perf_counter() - started
        export_id = _book_export(database, export_version, with_receipts)
        figures = _run_child("export", url, settings.data_dir, cluster,
                             str(profile_dir / "export.prof") if profile_dir else None)
        with database.sessions() as session:
            exported = session.scalar(select(ExportFlow).where(ExportFlow.id == export_id))
        if (exported.state, exported.row_count) != ("EXPORT_ESEGUITO", rows):
            raise RuntimeError(f"export ended {exported.state} with {exported.row_count} rows: {exported.error}")
        result_export = _rates(rows, figures)
        result_export.update(version=export_version, with_receipts=with_receipts, seed_s=round(seeded_s, 1),
                             zip_mib=round((exported.file_size or 0) / 2**20, 1))
        database.dispose()
        return {"postgresql": cluster.version(), "loadavg_end": [round(x, 2) for x in os.getloadavg()],
                "import": result_import, "export": result_export}
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


def _label(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows // 1000}k" if rows % 1000 == 0 else str(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="N = 1,000,000")
    parser.add_argument("--bad", type=float, default=0.02, help="share of rows with a mistake")
    parser.add_argument("--genera-iuv", type=float, default=0.0,
                        help="share of rows with flagGeneraIuv=true (each also renders an avviso PDF, ~15 ms)")
    parser.add_argument("--version", default="1_3", help="import tracciato")
    parser.add_argument("--export-version", default="1.3")
    parser.add_argument("--receipts", action="store_true", help="export with the receipt columns (rt base64)")
    parser.add_argument("--profile", type=Path, help="folder for cProfile dumps (import.prof, export.prof)")
    parser.add_argument("--no-record", action="store_true", help="print JSON only, leave docs/benchmarks.* alone")
    # Internal: the measured child.
    parser.add_argument("--child", choices=("import", "export"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return
    if args.profile and not args.child:
        args.profile.mkdir(parents=True, exist_ok=True)
    rows = 1_000_000 if args.million else args.rows
    loadavg_start = [round(x, 2) for x in os.getloadavg()]
    result = run(rows, bad=args.bad, genera_iuv=args.genera_iuv, version=args.version,
                 export_version=args.export_version, with_receipts=args.receipts, profile_dir=args.profile)
    result["loadavg_start"] = loadavg_start
    print(json.dumps(result, indent=2))
    if args.no_record or not (ROOT / "bench" / "report.py").exists():
        return
    from bench.report import record

    common = {"postgresql": result["postgresql"], "loadavg": [loadavg_start, result["loadavg_end"]]}
    label = _label(rows)
    record("import", f"{label} rows, PostgreSQL (flussi_bench)", dict(result["import"], **common))
    record("export", f"{label} paid rows, PostgreSQL (flussi_bench)", dict(result["export"], **common))


if __name__ == "__main__":
    main()
