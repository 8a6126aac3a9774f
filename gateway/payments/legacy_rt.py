"""Legacy RTs (modello 1): checked against the RPT they answer, stored once, and their outcome applied.

One code path for every way an RT arrives: pushed by the node (paaInviaRT) or fetched by the gateway
(nodoChiediCopiaRT, source "copiaRT"): call ``receive_rt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import faults, logs
from gateway.payments import documents, receipts, states
from gateway.payments import iuv as iuv_rules
from gateway.payments.documents import DocumentInvalid, Rpt, Rt
from gateway.xml import UnsafeXml, parse_bytes
from storage.models import Dovuto, Ente, PaymentAttempt, Receipt, ReceiptPayment

log = logs.get_logger(__name__)

DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
UNSIGNED = frozenset({"", "0"})
# codiceEsitoPagamento: which outcomes took money (for some items at least), and the carrello state of each.
PAID_ESITI = frozenset({"0", "2", "4"})
NEGATIVE_ESITI = frozenset({"1", "3"})
CART_NONE_PAID = {"1": states.NON_PAGATO, "3": states.DECORR_TERM}
CART_SOME_PAID = {"2": states.PARZ_PAGATO, "4": states.DECORR_TERM_PARZ}
SIGNATURE_UNVERIFIED = "signature_unverified"
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class RtHeader:
    """intestazionePPT of paaInviaRT."""

    broker: str | None
    station: str | None
    dominio: str | None
    iuv: str | None
    ccp: str | None


@dataclass(frozen=True)
class RtOutcome:
    receipt_id: int
    duplicate: bool
    flags: tuple[str, ...] = ()


def _fault(code: str, ente: Ente, description: str) -> faults.Fault:
    return faults.Fault(code, description=description[:1000], id=ente.fiscal_code, serial=0)


# --- signature and syntax ------------------------------------------------------------------------

@lru_cache(maxsize=4)
def _certificate(path: str) -> str:
    return Path(path).read_text()


def check_signature(data: bytes, tipo_firma: str | None, certificate: str | None) -> tuple[etree._Element, list[str]]:
    """The RT element to validate (signature removed) and flags; PAA_FIRMA_ERRATA only for a checked, broken one.

    Raises UnsafeXml when the document is not XML.
    """
    root = parse_bytes(data)
    signatures = root.findall(f".//{{{DSIG_NS}}}Signature")
    flags: list[str] = []
    if signatures and (tipo_firma or "").strip() not in UNSIGNED:
        if certificate:
            from signxml import InvalidInput, InvalidSignature, XMLVerifier

            try:
                verified = XMLVerifier().verify(data, x509_cert=certificate)
            except (InvalidSignature, InvalidInput) as exc:
                raise _SignatureBroken(str(exc)) from exc
            # Only what the signature covers is read: a signed fragment beside an unsigned RT proves nothing.
            signed = verified.signed_xml
            if signed is None or signed.tag != root.tag:
                raise _SignatureBroken("la firma non copre l'intera RT")
            root = signed
            signatures = root.findall(f".//{{{DSIG_NS}}}Signature")
        else:
            flags.append(SIGNATURE_UNVERIFIED)
    for signature in signatures:  # the RT schema has no place for ds:Signature
        signature.getparent().remove(signature)
    return root, flags


class _SignatureBroken(ValueError):
    pass


def parse(data: bytes | None, tipo_firma: str | None, certificate: str | None, ente: Ente) -> tuple[Rt, list[str]]:
    if not data:
        raise _fault(faults.PAA_SINTASSI_XSD, ente, "rt vuota")
    tipo = (tipo_firma or "").strip()
    try:
        root, flags = check_signature(data, tipo, certificate)
    except UnsafeXml as exc:
        if tipo not in UNSIGNED:
            raise _fault(faults.PAA_TIPOFIRMA_SCONOSCIUTO, ente,
                         f"tipoFirma {tipo}: solo RT XML (firma XML enveloped) sono gestite") from exc
        raise _fault(faults.PAA_SINTASSI_XSD, ente, str(exc)) from exc
    except _SignatureBroken as exc:
        raise _fault(faults.PAA_FIRMA_ERRATA, ente, f"firma della RT non valida: {exc}") from exc
    try:
        documents.validate_element("RT", root)
        return documents.parse_rt(root), flags
    except DocumentInvalid as exc:
        raise _fault(faults.PAA_SINTASSI_XSD, ente, exc.detail) from exc


# --- the RT against its RPT ----------------------------------------------------------------------

def problems_against_rpt(rt: Rt, rpt: Rpt) -> list[str]:
    """Every way the RT contradicts the RPT it answers (empty: consistent)."""
    found: list[str] = []
    if rt.dominio.identificativo_dominio != rpt.dominio.identificativo_dominio:
        found.append("identificativoDominio diverso dalla RPT")
    if rt.iuv != rpt.iuv:
        found.append("identificativoUnivocoVersamento diverso dalla RPT")
    if rt.codice_contesto_pagamento != rpt.codice_contesto_pagamento:
        found.append("CodiceContestoPagamento diverso dalla RPT")
    if rt.riferimento_messaggio_richiesta != rpt.identificativo_messaggio_richiesta:
        found.append("riferimentoMessaggioRichiesta diverso dall'identificativoMessaggioRichiesta della RPT")
    esito, paid, singoli = rt.codice_esito_pagamento, rt.pagamenti, rpt.singoli
    if esito in ("0", "2") and not paid:
        found.append(f"codiceEsitoPagamento {esito} senza datiSingoloPagamento")
    if paid and len(paid) != len(singoli):
        found.append(f"{len(paid)} datiSingoloPagamento per {len(singoli)} datiSingoloVersamento")
    if paid and sum((p.importo for p in paid), ZERO) != rt.importo_totale_pagato:
        found.append("importoTotalePagato diverso dalla somma dei singoloImportoPagato")
    if esito == "0":
        if rt.importo_totale_pagato != rpt.totale:
            found.append("importoTotalePagato diverso dall'importoTotaleDaVersare")
        if len(paid) == len(singoli) and any(p.importo != s.importo for p, s in zip(paid, singoli)):
            found.append("singoloImportoPagato diverso dall'importoSingoloVersamento")
    elif esito in NEGATIVE_ESITI:
        if rt.importo_totale_pagato != ZERO:
            found.append(f"codiceEsitoPagamento {esito} con importoTotalePagato diverso da 0.00")
    elif len(paid) == len(singoli) and any(p.importo not in (ZERO, s.importo) for p, s in zip(paid, singoli)):
        found.append("singoloImportoPagato né 0.00 né pari all'importoSingoloVersamento")
    return found


def _rpt_of(attempt: PaymentAttempt) -> Rpt | None:
    if not attempt.rpt_xml:
        return None
    return documents.parse_rpt(parse_bytes(attempt.rpt_xml))


def _find_attempt(session: Session, ente: Ente, rt: Rt) -> PaymentAttempt | None:
    attempt = session.scalar(select(PaymentAttempt).where(
        PaymentAttempt.ente_id == ente.id, PaymentAttempt.model == "rpt", PaymentAttempt.iuv == rt.iuv,
        PaymentAttempt.ccp == rt.codice_contesto_pagamento).order_by(PaymentAttempt.id.desc()).limit(1))
    if attempt is None:  # MyPay finds the RPT by the RT's riferimentoMessaggioRichiesta
        attempt = session.scalar(select(PaymentAttempt).where(
            PaymentAttempt.ente_id == ente.id, PaymentAttempt.model == "rpt",
            PaymentAttempt.request_message_id == rt.riferimento_messaggio_richiesta).limit(1))
    return attempt


# --- storing and applying ------------------------------------------------------------------------

def _same(stored: Receipt, rt: Rt) -> bool:
    return (stored.esito_code == rt.codice_esito_pagamento and stored.amount == rt.importo_totale_pagato
            and stored.iuv == rt.iuv and stored.ccp == rt.codice_contesto_pagamento)


def _dovuti(session: Session, ente: Ente, attempt: PaymentAttempt, iuv: str) -> list[Dovuto]:
    query = select(Dovuto).where(Dovuto.ente_id == ente.id).order_by(Dovuto.id).with_for_update()
    if attempt.dovuto_id is not None:
        return list(session.scalars(query.where(Dovuto.id == attempt.dovuto_id)))
    query = query.where(Dovuto.iuv == iuv)
    if attempt.carrello_id is not None:
        query = query.where(Dovuto.carrello_id == attempt.carrello_id)
    return list(session.scalars(query))


def _payer(rt: Rt) -> dict:
    subject = rt.soggetto_versante or rt.soggetto_pagatore
    return {"type": subject.identificativo.tipo, "code": subject.identificativo.codice, "name": subject.anagrafica,
            "address": subject.indirizzo, "civic": subject.civico, "postal_code": subject.cap,
            "city": subject.localita, "province": subject.provincia, "country": subject.nazione,
            "email": subject.email}


def receive_rt(session: Session, ente: Ente, data: bytes | None, *, tipo_firma: str | None,
               header: RtHeader | None = None, source: str = "paaInviaRT",
               certificate: str | None = None) -> RtOutcome:
    """Check, store (once) and apply an RT for ``ente``; raises faults.Fault with the PAA_* code to answer.

    ``certificate`` is PEM text (or a path to it) used to verify an enveloped XML signature.
    """
    if certificate and not certificate.lstrip().startswith("-----BEGIN"):
        certificate = _certificate(certificate)
    rt, flags = parse(data, tipo_firma, certificate, ente)
    if rt.dominio.identificativo_dominio != ente.fiscal_code:
        raise _fault(faults.PAA_SEMANTICA, ente, "identificativoDominio della RT diverso dal dominio chiamato")
    if header is not None and (header.iuv, header.ccp) != (rt.iuv, rt.codice_contesto_pagamento):
        raise _fault(faults.PAA_SEMANTICA, ente, "IUV/CCP dell'intestazione diversi da quelli della RT")
    attempt = _find_attempt(session, ente, rt)
    if attempt is None:
        raise _fault(faults.PAA_RPT_SCONOSCIUTA, ente,
                     f"nessuna RPT per IUV {rt.iuv} CCP {rt.codice_contesto_pagamento}")
    rpt = _rpt_of(attempt)
    if rpt is not None:
        problems = problems_against_rpt(rt, rpt)
        if problems:
            raise _fault(faults.PAA_SEMANTICA, ente, "; ".join(problems))
    elif (attempt.iuv, attempt.ccp) != (rt.iuv, rt.codice_contesto_pagamento):
        raise _fault(faults.PAA_SEMANTICA, ente, "RT non corrispondente alla RPT inviata")

    dovuti = _dovuti(session, ente, attempt, rt.iuv)  # locked: concurrent RTs of one position settle in turn
    receipt_id = rt.identificativo_messaggio_ricevuta
    stored = session.scalar(select(Receipt).where(Receipt.fiscal_code == ente.fiscal_code,
                                                  Receipt.receipt_id == receipt_id))
    if stored is not None:
        if not _same(stored, rt):
            raise _fault(faults.PAA_RT_DUPLICATA, ente, f"RT {receipt_id} già ricevuta con contenuto diverso")
        known = receipts.count_delivery(session, ente.fiscal_code, receipt_id)
        return RtOutcome(known.id, True, known.flags) if known else RtOutcome(stored.id, True)
    previous = [r for r in receipts.receipts_of(session, ente.fiscal_code, rt.iuv)
                if r.ccp == rt.codice_contesto_pagamento and r.source in ("paaInviaRT", "copiaRT")]
    # A different RT on a triple that has one: refused, unless it brings money after a negative one.
    if previous and not (rt.codice_esito_pagamento in PAID_ESITI
                         and all(r.esito_code in NEGATIVE_ESITI for r in previous)):
        raise _fault(faults.PAA_RT_DUPLICATA, ente,
                     f"la RT {previous[-1].receipt_id} è già stata accettata per IUV {rt.iuv} "
                     f"CCP {rt.codice_contesto_pagamento}")

    row = _receipt_row(ente, attempt, rt, rpt, data or b"", tipo_firma, source, flags,
                       dovuti[0] if len(dovuti) == 1 else None)
    inserted = receipts.insert_once(session, row)
    if inserted is None:  # the same RT stored by a concurrent delivery
        known = receipts.count_delivery(session, ente.fiscal_code, receipt_id)
        if known is None:  # pragma: no cover
            raise faults.system_error("RT non memorizzata", ente.fiscal_code)
        return RtOutcome(known.id, True, known.flags)
    _apply(session, attempt, rt, dovuti, flags, source)
    receipts.set_flags(row, flags)
    if flags:
        log.warning("RT stored with flags", receipt_id=receipt_id, flags=flags)
    return RtOutcome(row.id, False, tuple(flags))


def _receipt_row(ente: Ente, attempt: PaymentAttempt, rt: Rt, rpt: Rpt | None, raw: bytes, tipo_firma: str | None,
                 source: str, flags: list[str], dovuto: Dovuto | None) -> Receipt:
    esito = rt.codice_esito_pagamento
    row = Receipt(ente_id=ente.id, dovuto_id=dovuto.id if dovuto else attempt.dovuto_id,
                  carrello_id=attempt.carrello_id, fiscal_code=ente.fiscal_code,
                  receipt_id=rt.identificativo_messaggio_ricevuta, iuv=rt.iuv,
                  notice_number=_notice_number(ente, rt.iuv), ccp=rt.codice_contesto_pagamento, source=source,
                  outcome="OK" if esito in PAID_ESITI and rt.importo_totale_pagato > ZERO else "KO",
                  esito_code=esito, amount=rt.importo_totale_pagato,
                  paid_at=receipts.aware(rt.data_ora_messaggio_ricevuta),
                  psp_id=rt.istituto_attestante.identificativo.codice[:35],
                  psp_name=rt.istituto_attestante.denominazione[:140], payer=_payer(rt),
                  tipo_firma=(tipo_firma or "")[:10] or None, raw=raw, flags=list(flags))
    singoli = list(rpt.singoli) if rpt else []
    for index, pagamento in enumerate(rt.pagamenti, start=1):
        singolo = singoli[index - 1] if index <= len(singoli) else None
        row.payments.append(ReceiptPayment(
            index=index, iuv=rt.iuv, iur=pagamento.iur, amount=pagamento.importo, fiscal_code_pa=ente.fiscal_code,
            iban=singolo.iban_accredito if singolo else None, causale=pagamento.causale,
            dati_specifici_riscossione=pagamento.dati_specifici_riscossione, outcome_date=pagamento.data_esito))
    return row


def _notice_number(ente: Ente, iuv: str) -> str | None:
    try:
        return iuv_rules.notice_number(iuv, ente.application_code)
    except iuv_rules.IuvError:  # modello-1 IUVs may be free text (RF references...): no notice then
        return None


def _apply(session: Session, attempt: PaymentAttempt, rt: Rt, dovuti: list[Dovuto], flags: list[str],
           source: str) -> None:
    esito = rt.codice_esito_pagamento
    reason = f"RT {rt.identificativo_messaggio_ricevuta} esito {esito} ({source})"
    paid_items = [p.importo > ZERO for p in rt.pagamenti]
    for position, dovuto in enumerate(dovuti):
        if esito == "0":
            paid = True
        elif esito in NEGATIVE_ESITI:
            paid = False
        elif len(dovuti) == len(paid_items):
            paid = paid_items[position]
        else:
            paid = any(paid_items)
        if paid:
            receipts.complete(session, dovuto, flags, reason=reason, actor=source)
        else:
            receipts.release(session, dovuto, reason=reason, actor=source)
    took_money = esito in PAID_ESITI and rt.importo_totale_pagato > ZERO
    receipts.close_attempt(session, [attempt], receipts.ATTEMPT_PAID if took_money else receipts.ATTEMPT_NOT_PAID)
    if attempt.carrello_id is None:
        return
    # Another RPT of the same cart still waiting for its RT: the cart's outcome is not known yet.
    pending = session.scalar(select(PaymentAttempt.id).where(
        PaymentAttempt.carrello_id == attempt.carrello_id, PaymentAttempt.model == "rpt",
        PaymentAttempt.id != attempt.id, PaymentAttempt.state == receipts.ATTEMPT_STARTED,
        PaymentAttempt.iuv != attempt.iuv).limit(1))
    if pending is not None:
        return
    receipts.settle_carrello(session, attempt.carrello_id,
                             none_paid=CART_NONE_PAID.get(esito, states.NON_PAGATO),
                             some_paid=CART_SOME_PAID.get(esito, states.PARZ_PAGATO))
