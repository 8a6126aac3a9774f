"""Modello 1 outcome: one RT per RPT of a settled cart, kept for nodoChiediCopiaRT and pushed with paaInviaRT.

Delivery runs in one thread per worker process (rows claimed with a conditional UPDATE, like the
modello-3 receipts). Retry rule (§1.2.5, wisp-converter): transport error, timeout, or a KO whose fault is
retryable → again after ``retry_schedule``, at most ``max_attempts``; any other KO (PAA_RT_DUPLICATA
included) or a KO without fault → the RT is parked as rejected by the EC, never counted as delivered.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import requests
from lxml import etree
from sqlalchemy import insert, or_, select, update

from gateway.payments import documents
from gateway.payments.documents import IdentificativoUnivoco, Istituto, Rt, SingoloPagamentoRt
from simulators import legacy_store as t
from simulators import scenarios, soap
from simulators.config import Psp
from simulators.store import utcnow

if TYPE_CHECKING:
    from simulators.app import Simulator

log = logging.getLogger(__name__)
ROME = ZoneInfo("Europe/Rome")
PPT_NS = "http://ws.pagamenti.telematici.gov/"
PPTHEAD_NS = "http://ws.pagamenti.telematici.gov/ppthead"
PATH = "/pa/PaPerNodo"
RETRYABLE = frozenset({
    "PAA_ID_DOMINIO_ERRATO", "PAA_ID_INTERMEDIARIO_ERRATO", "PAA_STAZIONE_INT_ERRATA", "PAA_SYSTEM_ERROR",
    "PAA_PAGAMENTO_SCONOSCIUTO", "PAA_PAGAMENTO_DUPLICATO", "PAA_PAGAMENTO_IN_CORSO", "PAA_PAGAMENTO_ANNULLATO",
    "PAA_PAGAMENTO_SCADUTO"})


def record_state(conn: Any, rpt_id: int, state: str, description: str) -> None:
    now = utcnow()
    conn.execute(update(t.rpt).where(t.rpt.c.id == rpt_id).values(state=state, updated_at=now))
    conn.execute(insert(t.rpt_event).values(rpt_id=rpt_id, at=now, state=state, description=description[:255]))


def _iur(psp: Psp) -> str:
    # identificativoUnivocoRiscossione: unique per singolo pagamento, 1..35.
    return f"{psp.id[:8]}{uuid.uuid4().hex[:20]}".upper()


def build_rt(rpt_xml: bytes, psp: Psp, paid: bool, now: datetime) -> tuple[bytes, list[dict[str, Any]]]:
    """The RT answering ``rpt_xml`` (esito 0 with one IUR per singolo, or 1 with 0.00 amounts) and its payments."""
    rpt = documents.parse_rpt(documents.validate("RPT", rpt_xml))
    local = now.astimezone(ROME)
    today: date = local.date()
    pagamenti: list[SingoloPagamentoRt] = []
    summary: list[dict[str, Any]] = []
    for index, singolo in enumerate(rpt.singoli, start=1):
        amount = singolo.importo if paid else Decimal("0.00")
        iur = _iur(psp) if paid else "n/a"
        pagamenti.append(SingoloPagamentoRt(importo=amount, data_esito=today, iur=iur, causale=singolo.causale,
                                            dati_specifici_riscossione=singolo.dati_specifici_riscossione,
                                            esito="ESEGUITO" if paid else "NON ESEGUITO"))
        summary.append({"index": index, "iur": iur, "amount": f"{amount:.2f}", "date": today.isoformat()})
    total = sum((p.importo for p in pagamenti), Decimal("0.00"))
    rt = Rt(
        dominio=rpt.dominio,
        identificativo_messaggio_ricevuta=uuid.uuid4().hex,
        data_ora_messaggio_ricevuta=local.replace(tzinfo=None, microsecond=0),
        riferimento_messaggio_richiesta=rpt.identificativo_messaggio_richiesta,
        riferimento_data_richiesta=rpt.data_ora_messaggio_richiesta.date(),
        istituto_attestante=Istituto(IdentificativoUnivoco("G", psp.fiscal_code), psp.name[:70]),
        ente_beneficiario=rpt.ente_beneficiario,
        soggetto_versante=rpt.soggetto_versante,
        soggetto_pagatore=rpt.soggetto_pagatore,
        codice_esito_pagamento="0" if paid else "1",
        importo_totale_pagato=total,
        iuv=rpt.iuv,
        codice_contesto_pagamento=rpt.codice_contesto_pagamento,
        pagamenti=tuple(pagamenti),
    )
    xml = documents.build_rt(rt)
    documents.validate("RT", xml)  # never push a document the contract would refuse
    return xml, (summary if paid else [])


def settle(sim: "Simulator", node_cart_pk: int, paid: bool, psp: Psp) -> int:
    """Produce the RTs of a legacy cart (idempotent: an RPT that has its RT keeps it); returns how many are new."""
    now = utcnow()
    never = scenarios.get(sim.store, "rt_never") is not None
    late = scenarios.get(sim.store, "rt_late")
    twice = scenarios.get(sim.store, "rt_twice") is not None
    due = now + timedelta(seconds=float(late.get("seconds", 5))) if late is not None else now
    created = 0
    with sim.store.begin() as conn:
        rpts = conn.execute(select(t.rpt).where(t.rpt.c.rpt_cart_id == node_cart_pk)
                            .order_by(t.rpt.c.position)).mappings().all()
        for row in rpts:
            if conn.execute(select(t.rt.c.id).where(t.rt.c.rpt_id == row["id"])).first() is not None:
                continue
            xml, payments = build_rt(row["xml"], psp, paid, now)
            conn.execute(insert(t.rt).values(
                rpt_id=row["id"], dominio=row["dominio"], iuv=row["iuv"], ccp=row["ccp"], psp_id=psp.id,
                esito="0" if paid else "1", amount=row["amount"] if paid else Decimal("0.00"), payments=payments,
                tipo_firma="", xml=xml, delivery="withheld" if never else "pending", pushes=2 if twice else 1,
                attempts=0, delivered=0, next_attempt_at=due, created_at=now))
            record_state(conn, row["id"], "RPT_ACCETTATA_PSP", f"RPT accettata dal PSP {psp.id}")
            record_state(conn, row["id"], "RT_RICEVUTA_NODO", "RT ricevuta dal PSP")
            record_state(conn, row["id"], "RT_ACCETTATA_NODO", "RT " + ("positiva" if paid else "negativa")
                         + (" trattenuta dal nodo (scenario rt_never)" if never else " accettata dal nodo"))
            created += 1
    if created and not never:
        deliverer(sim).wake()
    return created


# --- paaInviaRT ----------------------------------------------------------------------------------

def paa_invia_rt_envelope(sim: "Simulator", row: dict[str, Any]) -> bytes:
    env = etree.Element(f"{{{soap.SOAP_ENV}}}Envelope",
                        nsmap={"soapenv": soap.SOAP_ENV, "ppt": PPT_NS, "ppthead": PPTHEAD_NS})
    header = etree.SubElement(etree.SubElement(env, f"{{{soap.SOAP_ENV}}}Header"), f"{{{PPTHEAD_NS}}}intestazionePPT")
    station = sim.settings.station
    soap.add(header, "identificativoIntermediarioPA", station.broker_id)
    soap.add(header, "identificativoStazioneIntermediarioPA", station.station_id)
    soap.add(header, "identificativoDominio", row["dominio"])
    soap.add(header, "identificativoUnivocoVersamento", row["iuv"])
    soap.add(header, "codiceContestoPagamento", row["ccp"])
    body = etree.SubElement(etree.SubElement(env, f"{{{soap.SOAP_ENV}}}Body"), f"{{{PPT_NS}}}paaInviaRT")
    soap.add(body, "tipoFirma", row["tipo_firma"] or "")
    soap.add(body, "rt", base64.b64encode(row["xml"]).decode("ascii"))
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def send(sim: "Simulator", row: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """One paaInviaRT: (OK | KO | TIMEOUT | ERROR, fault code, detail); recorded in sim_call."""
    subject = f"{row['dominio']}/{row['iuv']}/{row['ccp']}"
    started = time.monotonic()
    record = sim.store.record_call
    ms = lambda: int((time.monotonic() - started) * 1000)  # noqa: E731
    try:
        response = requests.post(sim.settings.gateway_url + PATH, data=paa_invia_rt_envelope(sim, row),
                                 timeout=sim.settings.send_rt_timeout,
                                 headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"paaInviaRT"'})
    except requests.Timeout:
        record("to_gateway", "paaInviaRT", "TIMEOUT", subject=subject, duration_ms=ms())
        return "TIMEOUT", None, "no answer in time"
    except requests.RequestException as exc:
        record("to_gateway", "paaInviaRT", "ERROR", subject=subject, duration_ms=ms(), detail=type(exc).__name__)
        return "ERROR", None, type(exc).__name__
    try:
        root = soap.body_root(soap.parse(response.content))
    except soap.BadXml:
        root = None
    if root is None or soap.local(root) != "paaInviaRTRisposta":
        record("to_gateway", "paaInviaRT", f"HTTP {response.status_code}", subject=subject, duration_ms=ms(),
               detail=response.text[:300])
        return "ERROR", None, f"HTTP {response.status_code} without paaInviaRTRisposta"
    # The result bean is wrapped in an element of the same name (esitoPaaInviaRT).
    bean = soap.child(root, "paaInviaRTRisposta")
    bean = root if bean is None else bean
    esito = soap.text(bean, "esito")
    fault = soap.child(bean, "fault")
    code = soap.text(fault, "faultCode")
    detail = soap.text(fault, "description") or soap.text(fault, "faultString")
    record("to_gateway", "paaInviaRT", esito or "KO", subject=subject, fault_code=code, duration_ms=ms(),
           detail=detail)
    return ("OK" if esito == "OK" else "KO"), code, detail


class RtDeliverer:
    """The per-process paaInviaRT thread (started lazily after the fork)."""

    def __init__(self, sim: "Simulator") -> None:
        self.sim = sim
        self._event = threading.Event()
        self._pid = 0
        self._lock = threading.Lock()

    def wake(self) -> None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._pid = os.getpid()
                    self._event = threading.Event()
                    threading.Thread(target=self._run, name="sim-rt", daemon=True).start()
        self._event.set()

    def _run(self) -> None:
        while True:
            try:
                busy = self.run_once()
            except Exception:  # noqa: BLE001 - the loop must survive a database hiccup
                log.exception("RT delivery loop failed")
                busy = False
            if not busy:
                self._event.wait(self.sim.settings.poll_interval)
                self._event.clear()

    def run_once(self) -> bool:
        now = utcnow()
        with self.sim.store.begin() as conn:
            due = conn.execute(select(t.rt.c.id).where(
                t.rt.c.delivery == "pending", t.rt.c.next_attempt_at <= now,
                or_(t.rt.c.locked_until.is_(None), t.rt.c.locked_until < now))
                .order_by(t.rt.c.next_attempt_at).limit(10)).scalars().all()
        attempted = False
        for rt_id in due:
            row = self._claim(rt_id)
            if row is not None:
                attempted = True
                self._deliver(row)
        return attempted

    def _claim(self, rt_id: int) -> dict[str, Any] | None:
        now = utcnow()
        lease = now + timedelta(seconds=self.sim.settings.send_rt_timeout + 30)
        with self.sim.store.begin() as conn:
            won = conn.execute(update(t.rt).where(
                t.rt.c.id == rt_id, t.rt.c.delivery == "pending", t.rt.c.next_attempt_at <= now,
                or_(t.rt.c.locked_until.is_(None), t.rt.c.locked_until < now))
                .values(locked_until=lease)).rowcount == 1
            if not won:
                return None
            return dict(conn.execute(select(t.rt).where(t.rt.c.id == rt_id)).mappings().one())

    def _deliver(self, row: dict[str, Any]) -> None:
        settings = self.sim.settings
        outcome, code, detail = send(self.sim, row)
        attempts = row["attempts"] + 1
        now = utcnow()
        values: dict[str, Any] = {"attempts": attempts, "locked_until": None,
                                  "last_error": None if outcome == "OK" else f"{outcome} {code or ''} {detail or ''}"[:500]}
        state: tuple[str, str] | None = None
        if outcome == "OK" or row["delivered"] > 0:
            # A repeated push (rt_twice) never changes what the first accepted delivery established.
            delivered = row["delivered"] + (1 if outcome == "OK" else 0)
            values["delivered"] = delivered
            if row["delivered"] + 1 >= row["pushes"]:
                values["delivery"] = "delivered"
            else:
                values["next_attempt_at"] = now
            if row["delivered"] == 0:
                state = ("RT_ACCETTATA_PA", "RT accettata dalla PA")
        elif outcome == "KO" and (code is None or code not in RETRYABLE):
            values["delivery"] = "rejected"
            state = ("RT_RIFIUTATA_PA", f"RT rifiutata dalla PA: {code or 'esito KO senza fault'}")
        else:
            if attempts >= settings.max_attempts:
                values["delivery"] = "exhausted"
            else:
                values["next_attempt_at"] = now + timedelta(seconds=settings.delay_after(attempts))
            state = ("RT_RIFIUTATA_PA", f"RT rifiutata dalla PA: {code}") if outcome == "KO" else \
                ("RT_ERRORE_INVIO_A_PA", f"errore di invio dell'RT alla PA: {outcome}")
        with self.sim.store.begin() as conn:
            conn.execute(update(t.rt).where(t.rt.c.id == row["id"]).values(**values))
            if state is not None:
                record_state(conn, row["rpt_id"], *state)


_DELIVERERS: dict[int, RtDeliverer] = {}


def deliverer(sim: "Simulator") -> RtDeliverer:
    found = _DELIVERERS.get(id(sim))
    if found is None:
        found = _DELIVERERS[id(sim)] = RtDeliverer(sim)
    return found


def release(sim: "Simulator", dominio: str, iuv: str, ccp: str) -> bool:
    """Push a withheld RT (rt_never) now, or re-arm a rejected/exhausted one (control API)."""
    with sim.store.begin() as conn:
        done = conn.execute(update(t.rt).where(
            t.rt.c.dominio == dominio, t.rt.c.iuv == iuv, t.rt.c.ccp == ccp,
            t.rt.c.delivery.in_(["withheld", "rejected", "exhausted"]))
            .values(delivery="pending", next_attempt_at=utcnow(), attempts=0)).rowcount == 1
    if done:
        deliverer(sim).wake()
    return done
