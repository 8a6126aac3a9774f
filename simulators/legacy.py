"""NodoPerPa (EC → node, modello 1 and SOAP reporting downloads) of the simulated node, at /sim/NodoPerPa.

nodoInviaRPT / nodoInviaCarrelloRPT open a ``sim_cart`` of kind "rpt" paid on /sim/pagamento/<id>;
SETTLERS["rpt"] turns the payer's choice into RTs (simulators.legacy_rt). The operations the simulator
cannot answer truthfully get PPT_SYSTEM_ERROR, never a fake success (§1.2.9).
"""

from __future__ import annotations

import base64
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable

from lxml import etree
from sqlalchemy import and_, func, insert, select
from sqlalchemy.exc import IntegrityError

from simulators import legacy_rt, scenarios, soap
from simulators import legacy_store as t
from simulators.faults import NodeFault
from simulators.legacy_checks import (AcceptedRpt, check_dominio, check_psp, check_rpt, check_station,
                                      check_tipo_firma)
from simulators.legacy_soap import esito_ko, fault_only, soap_app
from simulators.store import NewNotice, utcnow

if TYPE_CHECKING:
    from simulators.app import Simulator

PATH = "/NodoPerPa"
MAX_RPT = 5
UNSUPPORTED = ("nodoChiediInformativaPSP", "nodoPAChiediInformativaPA", "nodoChiediElencoQuadraturePA",
               "nodoChiediQuadraturaPA", "nodoInviaRichiestaStorno", "nodoInviaRispostaRevoca", "nodoChiediSceltaWISP")
# RPT states after which the node expects nothing more (§1.2.6); the others are "pending".
FINAL_STATES = ("RT_ACCETTATA_PA", "RPT_RIFIUTATA_NODO", "RPT_RIFIUTATA_PSP", "RPT_ERRORE_INVIO_A_PSP")
DEFAULT_LIST_DAYS = 30


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).replace(microsecond=0).isoformat()


def _forced(sim: "Simulator", operation: str) -> None:
    """Scenarios node_timeout (answer late) and node_fault (answer the configured PPT_* code)."""
    slow = scenarios.take(sim.store, "node_timeout", operation)
    if slow is not None:
        time.sleep(float(slow.get("seconds", 25)))
    forced = scenarios.take(sim.store, "node_fault", operation)
    if forced is not None:
        raise NodeFault(forced.get("code", "PPT_SYSTEM_ERROR"), forced.get("description", "scenario node_fault"))


class NodoPerPa:
    def __init__(self, sim: "Simulator") -> None:
        self.sim = sim

    @property
    def settings(self):  # noqa: ANN201
        return self.sim.settings

    def _caller(self, req: soap.Request) -> None:
        check_station(self.settings, req.text("identificativoIntermediarioPA", required=False),
                      req.text("identificativoStazioneIntermediarioPA", required=False),
                      req.text("password", required=False))

    # --- payments --------------------------------------------------------------------------------
    def invia_rpt(self, req: soap.Request, header: etree._Element | None, answer: etree._Element) -> None:
        if header is None or soap.local(header) != "intestazionePPT":
            raise NodeFault("PPT_SINTASSI_XSD", "header intestazionePPT mancante")
        head = soap.Request(header)
        broker = head.text("identificativoIntermediarioPA", required=False)
        station = head.text("identificativoStazioneIntermediarioPA", required=False)
        dominio = head.text("identificativoDominio", required=False)
        iuv, ccp = head.text("identificativoUnivocoVersamento"), head.text("codiceContestoPagamento")
        check_station(self.settings, broker, station, req.text("password", required=False))
        check_dominio(self.settings, dominio)
        check_psp(self.settings, req.text("identificativoPSP", required=False),
                  req.text("identificativoIntermediarioPSP", required=False),
                  req.text("identificativoCanale", required=False))
        check_tipo_firma(req.text("tipoFirma", required=False))
        accepted = check_rpt(self.settings, req.text("rpt", required=False), dominio, iuv, ccp)
        _forced(self.sim, "nodoInviaRPT")
        if self._known(accepted.dominio, accepted.iuv, accepted.ccp):
            raise NodeFault("PPT_RPT_DUPLICATA", f"RPT {dominio}/{iuv}/{ccp} gia' ricevuta")
        # A single RPT is a cart of one for the payment page; its id is the node's own.
        url = self._accept(f"RPT-{uuid.uuid4().hex}", broker or "", station or "",
                           req.text("identificativoPSP", required=False), [accepted])
        soap.add(answer, "esito", "OK")
        soap.add(answer, "redirect", "1")
        soap.add(answer, "url", url)

    def invia_carrello(self, req: soap.Request, header: etree._Element | None, answer: etree._Element) -> None:
        if header is None or soap.local(header) != "intestazioneCarrelloPPT":
            raise NodeFault("PPT_SINTASSI_XSD", "header intestazioneCarrelloPPT mancante")
        head = soap.Request(header)
        broker = head.text("identificativoIntermediarioPA", required=False)
        station = head.text("identificativoStazioneIntermediarioPA", required=False)
        cart_id = head.text("identificativoCarrello", max_len=35)
        check_station(self.settings, broker, station, req.text("password", required=False))
        psp = req.text("identificativoPSP", required=False)
        check_psp(self.settings, psp, req.text("identificativoIntermediarioPSP", required=False),
                  req.text("identificativoCanale", required=False))
        items = soap.children(req.element("listaRPT"), "elementoListaRPT")
        if not 1 <= len(items) <= MAX_RPT:
            raise NodeFault("PPT_SINTASSI_XSD", f"listaRPT deve contenere da 1 a {MAX_RPT} RPT, ricevute {len(items)}")
        _forced(self.sim, "nodoInviaCarrelloRPT")
        # Before the RPTs: a re-sent cart would otherwise be reported as duplicate RPTs.
        if self._cart_known(cart_id or ""):
            raise NodeFault("PPT_ID_CARRELLO_DUPLICATO", f"identificativoCarrello {cart_id} gia' utilizzato")
        accepted: list[AcceptedRpt] = []
        errors: list[NodeFault] = []
        seen: set[tuple[str, str, str]] = set()
        for serial, item in enumerate(items, start=1):
            element = soap.Request(item)
            dominio = element.text("identificativoDominio", required=False)
            iuv = element.text("identificativoUnivocoVersamento", required=False)
            ccp = element.text("codiceContestoPagamento", required=False)
            try:
                check_dominio(self.settings, dominio)
                check_tipo_firma(element.text("tipoFirma", required=False))
                rpt = check_rpt(self.settings, element.text("rpt", required=False), dominio, iuv, ccp, serial)
                if (rpt.dominio, rpt.iuv, rpt.ccp) in seen or self._known(rpt.dominio, rpt.iuv, rpt.ccp):
                    raise NodeFault("PPT_RPT_DUPLICATA", f"RPT {rpt.dominio}/{rpt.iuv}/{rpt.ccp} gia' ricevuta")
                seen.add((rpt.dominio, rpt.iuv, rpt.ccp))
                accepted.append(rpt)
            except NodeFault as fault:
                fault.serial = serial
                errors.append(fault)
        if errors:
            raise CartRefused(errors)
        url = self._accept(cart_id or "", broker or "", station or "", psp, accepted)
        soap.add(answer, "esitoComplessivoOperazione", "OK")
        soap.add(answer, "url", url)

    def _known(self, dominio: str, iuv: str, ccp: str) -> bool:
        with self.sim.store.begin() as conn:
            return conn.execute(select(t.rpt.c.id).where(t.rpt.c.dominio == dominio, t.rpt.c.iuv == iuv,
                                                          t.rpt.c.ccp == ccp)).first() is not None

    def _cart_known(self, cart_id: str) -> bool:
        with self.sim.store.begin() as conn:
            return conn.execute(select(t.rpt_cart.c.id).where(t.rpt_cart.c.node_cart_id == cart_id)).first() is not None

    def _accept(self, node_cart_id: str, broker: str, station: str, psp: str | None,
                rpts: list[AcceptedRpt]) -> str:
        """Store the cart all-or-nothing; the unique keys settle a race between two identical requests."""
        now = utcnow()
        try:
            with self.sim.store.begin() as conn:
                pk = conn.execute(insert(t.rpt_cart).values(
                    node_cart_id=node_cart_id, broker=broker, station=station, psp_id=psp, created_at=now)
                    .returning(t.rpt_cart.c.id)).scalar_one()
                base = self.settings.gateway_url
                sim_cart_id = self.sim.store.create_cart(
                    "rpt", [NewNotice(fiscal_code=r.dominio, amount=r.amount, iuv=r.iuv, ccp=r.ccp,
                                      company_name=r.company_name, description=r.description, rpt=r.xml)
                            for r in rpts],
                    # The station's return URL: the gateway's own landing page for legacy carts.
                    return_ok_url=f"{base}/pagamento/esito?idCarrello={node_cart_id}&esito=OK",
                    return_cancel_url=f"{base}/pagamento/esito?idCarrello={node_cart_id}&esito=ANNULLO",
                    return_error_url=f"{base}/pagamento/esito?idCarrello={node_cart_id}&esito=ERROR",
                    id_cart=node_cart_id, extra={"legacy_cart": pk}, conn=conn)
                conn.execute(t.rpt_cart.update().where(t.rpt_cart.c.id == pk).values(sim_cart_id=sim_cart_id))
                for position, r in enumerate(rpts, start=1):
                    rpt_id = conn.execute(insert(t.rpt).values(
                        rpt_cart_id=pk, position=position, broker=broker, station=station, dominio=r.dominio,
                        iuv=r.iuv, ccp=r.ccp, message_id=r.message_id, amount=r.amount, state="RPT_RICEVUTA_NODO",
                        xml=r.xml, created_at=now, updated_at=now).returning(t.rpt.c.id)).scalar_one()
                    conn.execute(insert(t.rpt_event).values(rpt_id=rpt_id, at=now, state="RPT_RICEVUTA_NODO",
                                                            description="RPT ricevuta dal nodo"))
                    legacy_rt.record_state(conn, rpt_id, "RPT_ACCETTATA_NODO", "RPT accettata dal nodo")
        except IntegrityError:
            if self._cart_known(node_cart_id):
                raise NodeFault("PPT_ID_CARRELLO_DUPLICATO", f"identificativoCarrello {node_cart_id} gia' utilizzato")
            raise NodeFault("PPT_RPT_DUPLICATA", "RPT gia' ricevuta") from None
        return f"{self.settings.public_url}/pagamento/{sim_cart_id}"

    # --- state and copies ------------------------------------------------------------------------
    def _rpt_row(self, req: soap.Request, unknown: str) -> dict[str, Any]:
        self._caller(req)
        dominio = req.text("identificativoDominio", required=False)
        check_dominio(self.settings, dominio)
        iuv, ccp = req.text("identificativoUnivocoVersamento"), req.text("codiceContestoPagamento")
        with self.sim.store.begin() as conn:
            row = conn.execute(select(t.rpt).where(t.rpt.c.dominio == dominio, t.rpt.c.iuv == iuv,
                                                   t.rpt.c.ccp == ccp)).mappings().first()
        if row is None:
            raise NodeFault(unknown, f"nessuna RPT per {dominio}/{iuv}/{ccp}")
        return dict(row)

    def stato_rpt(self, req: soap.Request, header: Any, answer: etree._Element) -> None:
        row = self._rpt_row(req, "PPT_RPT_SCONOSCIUTA")
        with self.sim.store.begin() as conn:
            events = conn.execute(select(t.rpt_event).where(t.rpt_event.c.rpt_id == row["id"])
                                  .order_by(t.rpt_event.c.id)).mappings().all()
            cart = conn.execute(select(t.rpt_cart).where(t.rpt_cart.c.id == row["rpt_cart_id"])).mappings().one()
        esito = etree.SubElement(answer, "esito")
        soap.add(esito, "stato", row["state"])
        soap.add(esito, "redirect", "1")
        soap.add(esito, "url", f"{self.settings.public_url}/pagamento/{cart['sim_cart_id']}")
        for event in events:
            item = etree.SubElement(esito, "elementoStoricoRPT")
            soap.add(item, "data", _iso(event["at"]))
            soap.add(item, "stato", event["state"])
            soap.add(item, "descrizione", event["description"])

    def copia_rt(self, req: soap.Request, header: Any, answer: etree._Element) -> None:
        # The node answers "RT sconosciuta" (not "RPT sconosciuta") for an unknown IUV/CCP (§1.2.7).
        row = self._rpt_row(req, "PPT_RT_SCONOSCIUTA")
        with self.sim.store.begin() as conn:
            found = conn.execute(select(t.rt).where(t.rt.c.rpt_id == row["id"])).mappings().first()
        if found is None:
            raise NodeFault("PPT_RT_NONDISPONIBILE", f"RT non ancora disponibile (stato {row['state']})")
        soap.add(answer, "tipoFirma", found["tipo_firma"] or "")
        soap.add(answer, "rt", base64.b64encode(found["xml"]).decode("ascii"))

    def lista_pendenti(self, req: soap.Request, header: Any, answer: etree._Element) -> None:
        self._caller(req)
        dominio = req.text("identificativoDominio", required=False)
        if dominio is not None:
            check_dominio(self.settings, dominio)
        size_text = req.text("dimensioneLista", pattern=r"[0-9]+")
        size = int(size_text or "0")
        if size < 1:
            raise NodeFault("PPT_SINTASSI_XSD", "dimensioneLista deve essere un intero positivo")
        query = select(t.rpt).where(t.rpt.c.station == self.settings.station.station_id,
                                    t.rpt.c.state.not_in(FINAL_STATES)).order_by(t.rpt.c.id)
        if dominio:
            query = query.where(t.rpt.c.dominio == dominio)
        for name, op in (("rangeDa", ">="), ("rangeA", "<=")):
            value = req.text(name, required=False)
            if value:
                moment = _parse_datetime(value, name)
                query = query.where(t.rpt.c.created_at >= moment if op == ">=" else t.rpt.c.created_at <= moment)
        with self.sim.store.begin() as conn:
            rows = conn.execute(query).mappings().all()
        if len(rows) > size:
            raise NodeFault("PPT_SUPERAMENTOSOGLIA", f"{len(rows)} RPT pendenti, dimensioneLista {size}")
        lista = etree.SubElement(answer, "listaRPTPendenti")
        soap.add(lista, "totRestituiti", str(len(rows)))
        for row in rows:
            item = etree.SubElement(lista, "rptPendente")
            soap.add(item, "identificativoDominio", row["dominio"])
            soap.add(item, "identificativoUnivocoVersamento", row["iuv"])
            soap.add(item, "codiceContestoPagamento", row["ccp"])
            soap.add(item, "stato", row["state"])

    # --- reporting downloads (§2.2, §2.3) ---------------------------------------------------------
    def _flow_filters(self, req: soap.Request) -> tuple[str | None, str | None]:
        self._caller(req)
        dominio = req.text("identificativoDominio", required=False)
        if dominio is not None:
            check_dominio(self.settings, dominio)
        psp = req.text("identificativoPSP", required=False)
        if psp is not None and self.settings.psp(psp) is None:
            raise NodeFault("PPT_PSP_SCONOSCIUTO", f"PSP {psp} sconosciuto")
        return dominio, psp

    def elenco_flussi(self, req: soap.Request, header: Any, answer: etree._Element) -> None:
        dominio, psp = self._flow_filters(req)
        days = int(self.settings.extra.get("flow_list_days", DEFAULT_LIST_DAYS))
        since = utcnow() - timedelta(days=days)
        query = select(t.flow.c.flow_id, t.flow.c.flow_datetime).where(t.flow.c.flow_datetime >= since)
        if dominio:
            query = query.where(t.flow.c.dominio == dominio)
        elif self.settings.station.domini is not None:
            query = query.where(t.flow.c.dominio.in_(sorted(self.settings.station.domini)))
        if psp:
            query = query.where(t.flow.c.psp_id == psp)
        with self.sim.store.begin() as conn:
            rows = conn.execute(query.order_by(t.flow.c.flow_datetime, t.flow.c.id)).all()
        elenco = etree.SubElement(answer, "elencoFlussiRendicontazione")
        soap.add(elenco, "totRestituiti", str(len(rows)))
        for flow_id, flow_datetime in rows:
            item = etree.SubElement(elenco, "idRendicontazione")
            soap.add(item, "identificativoFlusso", flow_id)
            soap.add(item, "dataOraFlusso", _iso(flow_datetime))

    def flusso(self, req: soap.Request, header: Any, answer: etree._Element) -> None:
        dominio, psp = self._flow_filters(req)
        flow_id = req.text("identificativoFlusso", required=False)
        if not flow_id:
            raise NodeFault("PPT_ID_FLUSSO_SCONOSCIUTO", "identificativoFlusso vuoto")
        query = select(t.flow).where(t.flow.c.flow_id == flow_id)
        if dominio:
            query = query.where(t.flow.c.dominio == dominio)
        if psp:
            query = query.where(t.flow.c.psp_id == psp)
        with self.sim.store.begin() as conn:
            # The newest dataOraFlusso is the valid version of a re-sent flow.
            row = conn.execute(query.order_by(t.flow.c.flow_datetime.desc(), t.flow.c.id.desc())).mappings().first()
        if row is None:
            raise NodeFault("PPT_ID_FLUSSO_SCONOSCIUTO", f"flusso {flow_id} sconosciuto")
        # Plain XML, base64-encoded, as the platform sends it today (§2.3).
        soap.add(answer, "xmlRendicontazione", base64.b64encode(row["xml"]).decode("ascii"))

    def unsupported(self, name: str) -> Callable:
        def handler(req: soap.Request, header: Any, answer: etree._Element) -> None:
            raise NodeFault("PPT_SYSTEM_ERROR", f"{name}: operazione non supportata dal simulatore")
        return handler


class CartRefused(NodeFault):
    """A cart with faulty RPTs: all-or-nothing, one faultBean per bad RPT in listaErroriRPT."""

    def __init__(self, errors: list[NodeFault]) -> None:
        first = errors[0]
        super().__init__(first.code, f"RPT {first.serial}: {first.description}")
        self.errors = errors


def _carrello_ko(answer: etree._Element, fault: NodeFault) -> None:
    soap.fault_bean(answer, NodeFault(fault.code, fault.description))
    soap.add(answer, "esitoComplessivoOperazione", "KO")
    if isinstance(fault, CartRefused):
        lista = etree.SubElement(answer, "listaErroriRPT")
        for error in fault.errors:
            soap.fault_bean(lista, error)


def _parse_datetime(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise NodeFault("PPT_SINTASSI_XSD", f"{name}: data/ora non valida") from None
    if moment.tzinfo is None:
        from zoneinfo import ZoneInfo

        moment = moment.replace(tzinfo=ZoneInfo("Europe/Rome"))  # the node's local time
    return moment


def app(sim: "Simulator") -> Callable:
    node = NodoPerPa(sim)
    handlers: dict[str, Any] = {
        "nodoInviaRPT": node.invia_rpt,
        "nodoInviaCarrelloRPT": node.invia_carrello,
        "nodoChiediStatoRPT": node.stato_rpt,
        "nodoChiediCopiaRT": node.copia_rt,
        "nodoChiediListaPendentiRPT": node.lista_pendenti,
        "nodoChiediElencoFlussiRendicontazione": node.elenco_flussi,
        "nodoChiediFlussoRendicontazione": node.flusso,
    }
    writers: dict[str, Any] = {name: fault_only for name in handlers}
    writers["nodoInviaRPT"] = esito_ko
    writers["nodoInviaCarrelloRPT"] = _carrello_ko
    for name in UNSUPPORTED:
        handlers[name] = node.unsupported(name)
        writers[name] = esito_ko if name in ("nodoInviaRichiestaStorno", "nodoInviaRispostaRevoca") else fault_only
    inner = soap_app(handlers, writers, sim.settings.max_request_bytes)

    def wrapped(environ: dict[str, Any], start_response: Callable):  # noqa: ANN202
        # RTs left pending by a restarted process are picked up as soon as the node is used again.
        legacy_rt.deliverer(sim).wake()
        return inner(environ, start_response)

    return wrapped


# --- the payment page's outcome for carts of kind "rpt" ------------------------------------------

def settle_rpt_cart(sim: "Simulator", cart: Any, action: str, psp: Any) -> Any:
    """SETTLERS["rpt"]: pay → RTs esito 0; refuse → RTs esito 1 (0.00); abandon → no RT (the EC recovers)."""
    from simulators.settlement import Settlement

    legacy_cart = int(cart.extra.get("legacy_cart"))
    if action == "abandon":
        with sim.store.begin() as conn:
            for rpt_id in conn.execute(select(t.rpt.c.id).where(t.rpt.c.rpt_cart_id == legacy_cart)).scalars():
                conn.execute(insert(t.rpt_event).values(rpt_id=rpt_id, at=utcnow(), state="RPT_ACCETTATA_NODO",
                                                        description="pagamento abbandonato dall'utente"))
        return Settlement("ABANDONED", cart.return_cancel_url, "Pagamento annullato / Payment cancelled")
    paid = action == "pay"
    created = legacy_rt.settle(sim, legacy_cart, paid, psp)
    if paid:
        return Settlement("PAID", cart.return_ok_url, "Pagamento eseguito / Payment done",
                          details={"rt": created})
    return Settlement("REFUSED", cart.return_error_url, "Pagamento rifiutato / Payment refused",
                      details={"rt": created})


def routes(sim: "Simulator") -> dict[str, Callable]:
    """Route provider of simulators.app: NodoPerPa (EC side) and NodoPerPsp (PSP reporting flows)."""
    from simulators import legacy_psp
    from simulators.settlement import SETTLERS

    t.create_tables(sim.store.engine)
    SETTLERS["rpt"] = settle_rpt_cart
    return {PATH: app(sim), legacy_psp.PATH: legacy_psp.app(sim)}
