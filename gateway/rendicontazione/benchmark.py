"""Benchmark: a 100,000-payment flow validated, parsed, reconciled and stored (``python -m
gateway.rendicontazione.benchmark [--db URL] [--record]``); the measured step runs in a fresh process for its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert

PAYMENTS = 100_000


def seed(url: str, work: Path, payments: int) -> dict:
    """An ente with one receipt per payment, and the flow reporting them with two planted anomalies."""
    from gateway.enti.registry import NewEnte, add_ente
    from gateway.payments.documents import FlussoHeader, IdentificativoUnivoco, PagamentoFlusso, write_flusso
    from storage.db import Database
    from storage.migrate import upgrade
    from storage.models import Receipt, ReceiptPayment

    upgrade(url)
    database = Database(url)
    fiscal_code = f"9{int(time.time()) % 10**10:010d}"
    with database.transaction() as session:
        ente = add_ente(session, NewEnte(cod_ipa=f"BENCH{fiscal_code[-6:]}", fiscal_code=fiscal_code, name="Bench",
                                         password="bench-password", segregation_code="01"))
        ente_id = ente.id
    paid = datetime(2026, 3, 1, 10, tzinfo=timezone.utc)
    for start in range(0, payments, 10_000):
        with database.transaction() as session:
            receipts = [{"ente_id": ente_id, "fiscal_code": fiscal_code, "receipt_id": f"IUR{n:012d}",
                         "iuv": f"01{n:015d}", "source": "paSendRTV2", "outcome": "OK", "amount": Decimal("10.00"),
                         "paid_at": paid, "raw": b"<r/>", "flags": [], "deliveries": 1, "last_delivery_at": paid}
                        for n in range(start, min(payments, start + 10_000))]
            ids = session.scalars(insert(Receipt).returning(Receipt.id, sort_by_parameter_order=True),
                                  receipts).all()
            session.execute(insert(ReceiptPayment), [
                {"receipt_id": pk, "index": 1, "iuv": r["iuv"], "iur": r["receipt_id"], "amount": Decimal("10.00"),
                 "fiscal_code_pa": fiscal_code} for pk, r in zip(ids, receipts)])
    if not database.is_sqlite:
        # What autovacuum does after a bulk load; without statistics the planner scans whole tables.
        with database.engine.connect() as connection:
            connection.exec_driver_sql("COMMIT")
            connection.exec_driver_sql("ANALYZE receipt_payment")
            connection.exec_driver_sql("ANALYZE receipt")
    database.dispose()
    rows = (PagamentoFlusso(f"01{n:015d}" if n < payments - 1 else "99000000000000001", f"IUR{n:012d}",
                            Decimal("10.01") if n == 0 else Decimal("10.00"), "0", date(2026, 3, 1), 1)
            for n in range(payments))
    header = FlussoHeader(identificativo_flusso="2026-03-01BENCHPSP-S0000001",
                          data_ora_flusso=datetime(2026, 3, 2, 9), identificativo_univoco_regolamento="SCTBENCH",
                          data_regolamento=date(2026, 3, 2), mittente=IdentificativoUnivoco("G", "99999000101"),
                          ricevente=fiscal_code, numero_totale_pagamenti=payments,
                          importo_totale_pagamenti=Decimal("10.00") * payments + Decimal("0.01"))
    path = work / "flow.xml"
    with open(path, "wb") as out:
        write_flusso(out, header, rows)
    return {"ente_id": ente_id, "fiscal_code": fiscal_code, "path": str(path)}


def measured(url: str, ente_id: int, fiscal_code: str, path: str) -> dict:
    """The step under test: streaming XSD validation, then parse + reconcile + bulk insert in one transaction."""
    from storage.db import Database

    from .store import FetchedFlow, store_flow
    from .validation import validate_file

    database = Database(url)
    started = time.perf_counter()
    validate_file(Path(path))
    validated = time.perf_counter()
    stored = store_flow(database, ente_id, fiscal_code, FetchedFlow(
        "soap", "BENCHPSP", "2026-03-01BENCHPSP-S0000001", datetime(2026, 3, 2, 8, tzinfo=timezone.utc), None, None,
        Path(path)))
    done = time.perf_counter()
    database.dispose()
    return {"payments": stored.rows, "counts": stored.counts, "validate_s": round(validated - started, 2),
            "store_reconcile_s": round(done - validated, 2), "wall_s": round(done - started, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", help="SQLAlchemy URL; default: a throwaway PostgreSQL cluster")
    parser.add_argument("--payments", type=int, default=PAYMENTS)
    parser.add_argument("--record", action="store_true", help="Record into docs/benchmarks.json (bench.report)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        spec = json.loads(args.measure)
        print(json.dumps(measured(spec["url"], spec["ente_id"], spec["fiscal_code"], spec["path"])))
        return
    cluster = None
    url = args.db
    if url is None:
        from bench.postgres import start_cluster

        cluster = start_cluster()
        cluster.admin("CREATE DATABASE bench_rendicontazione")
        url = cluster.url("bench_rendicontazione")
    try:
        with tempfile.TemporaryDirectory(prefix="rend-bench-") as tmp:
            seeded = seed(url, Path(tmp), args.payments)
            spec = json.dumps({"url": url, **seeded})
            child = subprocess.run([sys.executable, "-m", "gateway.rendicontazione.benchmark", "--measure", spec],
                                   capture_output=True, text=True, check=True)
            figures = json.loads(child.stdout.strip().splitlines()[-1])
            figures["flow_mib"] = round(Path(seeded["path"]).stat().st_size / 2**20, 1)
    finally:
        if cluster is not None:
            figures_backend = cluster.version()
            cluster.stop()
    backend = "PostgreSQL " + figures_backend if cluster is not None else url.split(":", 1)[0]
    print(json.dumps({"backend": backend, **figures}, indent=2))
    if args.record:
        from bench.report import record

        record("rendicontazione", f"{args.payments:,} payments: validate + parse + reconcile + store, {backend}",
               figures)


if __name__ == "__main__":
    main()
