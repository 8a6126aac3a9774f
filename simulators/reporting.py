"""Daily reporting by the simulated PSPs: one flow per (PSP, ente) from the receipts the simulator produced.

identificativoFlusso = <date><idPSP>-<progressive>. Published through FdR (a revision republishes the same
name: next revision) and, with transport "soap"/"both" (ENTE_GATEWAY_SIMULATOR_REPORTING, or per request),
also sent as FlussoRiversamento 1.0.4 with nodoInviaFlussoRendicontazione (a revision has a newer
dataOraFlusso). Anomalies for tests: ``extra_payment`` (a payment reported without receipt) and
``amount_delta`` (the first payment reported with a different amount).

Control API: POST /sim/api/report {date?, psp?, dominio?, revise?, extra_payment?, amount_delta?, transport?}
CLI: ente-gateway sim report [--date D] [--psp P] [--dominio F] [--revise] [--extra-payment] [--amount-delta X]
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Iterable
from zoneinfo import ZoneInfo

import click
from sqlalchemy import func, insert, select, update

from gateway.payments import documents
from gateway.payments.documents import FlussoHeader, IdentificativoUnivoco, PagamentoFlusso
from simulators import fdr, legacy_psp
from simulators import legacy_store as t
from simulators.commands import call, sim as sim_group
from simulators.config import Psp
from simulators.faults import NodeFault
from simulators.store import sim_cart_notice, utcnow

if TYPE_CHECKING:
    from simulators.app import Simulator

ROME = ZoneInfo("Europe/Rome")
TRANSPORTS = ("fdr", "soap", "both")
PAY_STATUS = {"0": "EXECUTED", "3": "REVOKED", "9": "NO_RPT"}


@dataclass
class Row:
    iuv: str
    iur: str
    index: int
    amount: Decimal
    day: date
    esito: str = "0"


@dataclass
class Flow:
    psp: Psp
    dominio: str
    rows: list[Row] = field(default_factory=list)


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), ROME)
    return start, start + timedelta(days=1)


def collect(sim: "Simulator", day: date, psp_id: str | None, dominio: str | None) -> dict[tuple[str, str], Flow]:
    """What each PSP collected on ``day``: positive RTs (per datiSingoloPagamento) and modello-3 receipts
    (per transfer, reported to the transfer's ente)."""
    start, end = _day_bounds(day)
    flows: dict[tuple[str, str], Flow] = {}

    def add(psp: Psp | None, fiscal_code: str, row: Row) -> None:
        if psp is None or (psp_id and psp.id != psp_id) or (dominio and fiscal_code != dominio):
            return
        flows.setdefault((psp.id, fiscal_code), Flow(psp, fiscal_code)).rows.append(row)

    with sim.store.begin() as conn:
        rts = conn.execute(select(t.rt).where(t.rt.c.esito == "0", t.rt.c.created_at >= start,
                                              t.rt.c.created_at < end).order_by(t.rt.c.id)).mappings().all()
    for rt in rts:
        for payment in rt["payments"]:
            add(sim.settings.psp(rt["psp_id"]), rt["dominio"],
                Row(rt["iuv"], payment["iur"], int(payment["index"]), Decimal(payment["amount"]),
                    date.fromisoformat(payment["date"])))
    for receipt in sim.store.receipts(states=["DELIVERED", "HELD", "PENDING", "FAILED"]):
        paid_at = receipt["payment_datetime"]
        if receipt["outcome"] != "OK" or not start <= paid_at < end:
            continue
        for transfer in receipt["transfers"]:
            add(sim.settings.psp(receipt["psp_id"]), transfer.get("fiscalCodePA") or receipt["fiscal_code"],
                Row(receipt["iuv"] or "", receipt["receipt_id"], int(transfer["idTransfer"]),
                    Decimal(str(transfer["amount"])), paid_at.astimezone(ROME).date()))
    return flows


def _company(sim: "Simulator", fiscal_code: str) -> str:
    with sim.store.begin() as conn:
        name = conn.execute(select(sim_cart_notice.c.company_name).where(
            sim_cart_notice.c.fiscal_code == fiscal_code, sim_cart_notice.c.company_name.is_not(None))
            .limit(1)).scalar()
    return (name or f"Ente {fiscal_code}")[:140]


def _flow_name(sim: "Simulator", day: date, flow: Flow, revise: bool) -> tuple[str, int] | None:
    """The flow id of (day, PSP, ente) and its revision; None when already reported and not revising."""
    with sim.store.begin() as conn:
        found = conn.execute(select(t.report).where(t.report.c.day == day.isoformat(), t.report.c.psp_id == flow.psp.id,
                                                    t.report.c.dominio == flow.dominio)).mappings().first()
        if found is not None:
            if not revise:
                return None
            conn.execute(update(t.report).where(t.report.c.id == found["id"]).values(revision=found["revision"] + 1))
            return found["flow_id"], found["revision"] + 1
        progressive = conn.execute(select(func.count()).select_from(t.report).where(
            t.report.c.day == day.isoformat(), t.report.c.psp_id == flow.psp.id)).scalar() + 1
        name = f"{day.isoformat()}{flow.psp.id}-S{progressive:07d}"
        conn.execute(insert(t.report).values(day=day.isoformat(), psp_id=flow.psp.id, dominio=flow.dominio,
                                             flow_id=name, revision=1, created_at=utcnow()))
        return name, 1


def _publish_fdr(sim: "Simulator", flow: Flow, name: str, day: date, regulation: str) -> int:
    psp = flow.psp
    total = sum((r.amount for r in flow.rows), Decimal("0.00"))
    try:  # a draft left by an interrupted report of the same flow is replaced
        fdr.delete_draft(sim, psp.id, name)
    except fdr.FdrError:
        pass
    fdr.create(sim, psp.id, name, {
        "fdr": name, "fdrDate": fdr.instant(utcnow()),
        "sender": {"type": "LEGAL_PERSON", "id": psp.fiscal_code, "pspId": psp.id, "pspName": psp.name[:70],
                   "pspBrokerId": psp.broker_id, "channelId": psp.channel_id, "password": psp.password},
        "receiver": {"id": flow.dominio, "organizationId": flow.dominio,
                     "organizationName": _company(sim, flow.dominio)},
        "regulation": regulation, "regulationDate": (day + timedelta(days=1)).isoformat(),
        "totPayments": len(flow.rows), "sumPayments": float(total)})
    for start in range(0, len(flow.rows), 1000):
        batch = flow.rows[start:start + 1000]
        fdr.add_payments(sim, psp.id, name, {"payments": [
            {"index": start + position, "iuv": r.iuv, "iur": r.iur, "idTransfer": min(max(r.index, 1), 5),
             "pay": float(r.amount), "payStatus": PAY_STATUS.get(r.esito, "EXECUTED"),
             "payDate": fdr.instant(datetime.combine(r.day, time(12), ROME))}
            for position, r in enumerate(batch, start=1)]})
    return fdr.publish(sim, psp.id, name)


def _send_soap(sim: "Simulator", flow: Flow, name: str, day: date, regulation: str) -> str:
    psp = flow.psp
    with sim.store.begin() as conn:
        last = conn.execute(select(func.max(t.flow.c.flow_datetime)).where(
            t.flow.c.psp_id == psp.id, t.flow.c.flow_id == name)).scalar()
    moment = utcnow().replace(microsecond=0)
    if last is not None and moment <= last:
        moment = last + timedelta(seconds=1)  # a revision must carry a newer dataOraFlusso
    local = moment.astimezone(ROME).replace(tzinfo=None)
    header = FlussoHeader(identificativo_flusso=name, data_ora_flusso=local,
                          identificativo_univoco_regolamento=regulation, data_regolamento=day + timedelta(days=1),
                          mittente=IdentificativoUnivoco("G", psp.fiscal_code), ricevente=flow.dominio,
                          denominazione_mittente=psp.name[:70], denominazione_ricevente=_company(sim, flow.dominio))
    xml = documents.build_flusso(header, [PagamentoFlusso(r.iuv, r.iur, r.amount, r.esito, r.day, r.index)
                                          for r in flow.rows])
    legacy_psp.receive_flow(sim, psp_id=psp.id, broker=psp.broker_id, channel=psp.channel_id, password=psp.password,
                            dominio=flow.dominio, flow_id=name, flow_datetime=local.isoformat(),
                            encoded=base64.b64encode(xml).decode("ascii"))
    return local.isoformat()


def report(sim: "Simulator", *, day: date | None = None, psp_id: str | None = None, dominio: str | None = None,
           revise: bool = False, extra_payment: Any = None, amount_delta: Any = None,
           transport: str | None = None) -> list[dict[str, Any]]:
    """Build and send the day's flows; returns one summary per flow sent."""
    day = day or utcnow().astimezone(ROME).date()
    transport = transport or os.environ.get("ENTE_GATEWAY_SIMULATOR_REPORTING", "fdr")
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {TRANSPORTS}")
    flows = collect(sim, day, psp_id, dominio)
    if extra_payment and dominio and not flows:
        psp = sim.settings.psp(psp_id)
        if psp is not None:
            flows[(psp.id, dominio)] = Flow(psp, dominio)
    sent: list[dict[str, Any]] = []
    for flow in flows.values():
        if extra_payment:
            extra = extra_payment if isinstance(extra_payment, dict) else {}
            flow.rows.append(Row(str(extra.get("iuv") or f"99{uuid.uuid4().int % 10**15:015d}"),
                                 str(extra.get("iur") or f"IUR{uuid.uuid4().hex[:16]}"), 1,
                                 Decimal(str(extra.get("amount", "10.00"))).quantize(Decimal("0.01")), day))
        if amount_delta and flow.rows:
            first = flow.rows[0]
            first.amount = (first.amount + Decimal(str(amount_delta))).quantize(Decimal("0.01"))
        if not flow.rows:
            continue
        named = _flow_name(sim, day, flow, revise)
        if named is None:
            continue
        name, _ = named
        regulation = f"SCT{uuid.uuid4().hex[:20].upper()}"
        summary: dict[str, Any] = {"flowId": name, "psp": flow.psp.id, "dominio": flow.dominio,
                                   "payments": len(flow.rows),
                                   "total": f"{sum((r.amount for r in flow.rows), Decimal('0.00')):.2f}"}
        if transport in ("fdr", "both"):
            summary["revision"] = _publish_fdr(sim, flow, name, day, regulation)
        if transport in ("soap", "both"):
            summary["dataOraFlusso"] = _send_soap(sim, flow, name, day, regulation)
        sent.append(summary)
    return sent


# --- control API and CLI -------------------------------------------------------------------------

def _api(sim: "Simulator") -> Callable:
    def app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        status, data = 200, None
        try:
            if environ.get("REQUEST_METHOD") != "POST":
                raise ValueError("POST {date?, psp?, dominio?, revise?, extra_payment?, amount_delta?, transport?}")
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
            day = date.fromisoformat(body["date"]) if body.get("date") else None
            data = {"flows": report(sim, day=day, psp_id=body.get("psp"), dominio=body.get("dominio"),
                                    revise=bool(body.get("revise")), extra_payment=body.get("extra_payment"),
                                    amount_delta=body.get("amount_delta"), transport=body.get("transport"))}
        except (ValueError, KeyError, TypeError) as exc:
            status, data = 400, {"error": str(exc)}
        except (NodeFault, fdr.FdrError) as exc:
            status, data = 409, {"error": str(exc)}
        payload = json.dumps(data).encode()
        start_response(f"{status} {'OK' if status == 200 else 'Error'}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]
    return app


def routes(sim: "Simulator") -> dict[str, Callable]:
    t.create_tables(sim.store.engine)
    return {"/api/report": _api(sim)}


@sim_group.command("report", help="Make the simulated PSPs send a day's reporting flows (FdR, and SOAP if asked).")
@click.option("--date", "day", default=None, help="YYYY-MM-DD; default today (Europe/Rome).")
@click.option("--psp", default=None, help="Only this PSP.")
@click.option("--dominio", default=None, help="Only this ente (fiscal code).")
@click.option("--revise", is_flag=True, help="Publish the day's flows again as a new revision.")
@click.option("--extra-payment", is_flag=True, help="Anomaly: add a payment that has no receipt.")
@click.option("--amount-delta", default=None, help="Anomaly: change the first payment's amount by this much.")
@click.option("--transport", type=click.Choice(TRANSPORTS), default=None)
@click.pass_context
def report_command(ctx: click.Context, day: str | None, psp: str | None, dominio: str | None, revise: bool,
                   extra_payment: bool, amount_delta: str | None, transport: str | None) -> None:
    payload = {"date": day, "psp": psp, "dominio": dominio, "revise": revise, "extra_payment": extra_payment,
               "amount_delta": amount_delta, "transport": transport}
    status, data = call(ctx, "POST", "/report", {k: v for k, v in payload.items() if v not in (None, False)})
    if status != 200:
        raise click.ClickException(f"report failed ({status}): {data}")
    click.echo(json.dumps(data, indent=2))
