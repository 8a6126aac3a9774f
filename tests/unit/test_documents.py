"""Payload schemas agree with the official ones sample by sample and type by type; parsers, builders,
the RT capital-C trap and streaming of a 100,000-row FlussoRiversamento."""

from __future__ import annotations

import base64
import re
import time
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from gateway.payments.documents import (
    ENTE_NS, PAY_NS, Allegato, DocumentInvalid, Dominio, FlussoHeader, IdentificativoUnivoco, Istituto,
    MarcaBollo, PagamentoFlusso, RicevutaPagati, Rpt, Rt, SingoloPagamentoRt, SingoloPagato, Soggetto,
    SingoloVersamentoRpt, bilancio_total, build_flusso, build_pagati, build_pagati_con_ricevuta,
    build_rpt, build_rt, parse_dovuti, parse_dovuti_enti_secondari, parse_flusso, parse_rpt, parse_rt,
    parse_versamento, schema_path, validate, write_flusso)
from gateway.xml import load_schema, parse_bytes

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
REFERENCE_XSD = {
    "PagInf_Dovuti_Pagati_6_2_0.xsd": REFERENCE / "mypay" / "wsdl" / "PagInf_Dovuti_Pagati_6_2_0.xsd",
    "PagInf_RPT_RT_6_2_0.xsd": REFERENCE / "pagopa" / "gad" / "xsd" / "PagInf_RPT_RT_6_2_0.xsd",
    "FlussoRiversamento_1_0_4.xsd": REFERENCE / "pagopa" / "xsd-common" / "FlussoRiversamento_1_0_4.xsd",
}
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="official reference schemas not present")


def reference_schema(kind: str) -> etree.XMLSchema:
    return load_schema(REFERENCE_XSD[schema_path(kind).name])


def project_accepts(kind: str, data: bytes) -> bool:
    try:
        validate(kind, data)
        return True
    except DocumentInvalid:
        return False


def reference_accepts(kind: str, data: bytes) -> bool:
    root = parse_bytes(data)
    return root.tag.endswith("}" + kind) and reference_schema(kind).validate(root)


# --- sample documents ------------------------------------------------------------------------------

SOGGETTO = """<soggettoPagatore>
  <identificativoUnivocoPagatore><tipoIdentificativoUnivoco>F</tipoIdentificativoUnivoco>
    <codiceIdentificativoUnivoco>RSSMRA80A01H501U</codiceIdentificativoUnivoco></identificativoUnivocoPagatore>
  <anagraficaPagatore>Mario Rossi</anagraficaPagatore>
  <indirizzoPagatore>Via Roma</indirizzoPagatore><civicoPagatore>1</civicoPagatore>
  <capPagatore>30100</capPagatore><localitaPagatore>Venezia</localitaPagatore>
  <provinciaPagatore>VE</provinciaPagatore><nazionePagatore>IT</nazionePagatore>
  <e-mailPagatore>mario.rossi@example.it</e-mailPagatore>
</soggettoPagatore>"""

BILANCIO = ("<bilancio>\n  <capitolo><codCapitolo>CAP01</codCapitolo>\n    <accertamento><codAccertamento>ACC1"
            "</codAccertamento><importo>50.00</importo></accertamento>\n  </capitolo>\n</bilancio>")


def singolo(iud: str = "IUD0001", importo: str = "100.00", extra: str = "") -> str:
    return (f"<datiSingoloVersamento><identificativoUnivocoDovuto>{iud}</identificativoUnivocoDovuto>"
            f"<importoSingoloVersamento>{importo}</importoSingoloVersamento>"
            "<identificativoTipoDovuto>TARI</identificativoTipoDovuto>"
            "<causaleVersamento>Tassa rifiuti 2024</causaleVersamento>"
            f"<datiSpecificiRiscossione>9/0101100IM/</datiSpecificiRiscossione>{extra}</datiSingoloVersamento>")


def dovuti(body_items: str | None = None, versione: str = "6.2.0", soggetto: str = SOGGETTO,
           root_attrs: str = "", decl: str = '<?xml version="1.0" encoding="UTF-8"?>\n') -> bytes:
    items = singolo() if body_items is None else body_items
    return (f'{decl}<Dovuti xmlns="{ENTE_NS}"{root_attrs}><versioneOggetto>{versione}</versioneOggetto>'
            f"{soggetto}<datiVersamento><tipoVersamento>ALL</tipoVersamento>{items}</datiVersamento>"
            "</Dovuti>").encode()


FULL_ITEM = singolo("IUD0002", "50.00",
                    extra="<datiMarcaBolloDigitale><tipoBollo>01</tipoBollo><hashDocumento>"
                          "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo=</hashDocumento>"
                          "<provinciaResidenza>VE</provinciaResidenza></datiMarcaBolloDigitale>" + BILANCIO
                    ).replace("<identificativoTipoDovuto>",
                              "<commissioneCaricoPA>1.50</commissioneCaricoPA><identificativoTipoDovuto>")

LOOSE_ROOT = (' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:foo="urn:stray:ns" '
              'xmlns:pay="http://www.regione.veneto.it/schemas/2012/Pagamenti/Ente/" '
              f'xsi:schemaLocation="{ENTE_NS} http://unreachable.invalid/PagInf_Dovuti_Pagati_6_2_0.xsd"')


def prefixed(data: bytes, prefix: str = "pay") -> bytes:
    """Same document with every element written with a namespace prefix instead of a default one."""
    root = parse_bytes(data)
    ns = etree.QName(root).namespace
    copy = etree.Element(etree.QName(ns, etree.QName(root).localname), nsmap={prefix: ns})
    copy.extend(root)
    return etree.tostring(copy, xml_declaration=True, encoding="UTF-8")


DOVUTI_VALID = {
    "minimal": dovuti(),
    "full item with bollo, commissione, bilancio": dovuti(singolo() + FULL_ITEM),
    "five items": dovuti("".join(singolo(f"IUD{i}") for i in range(5))),
    "minimal payer": dovuti(soggetto=SOGGETTO.split("<indirizzoPagatore>")[0] + "</soggettoPagatore>"),
    "versione 6.0 and loose root": dovuti(versione="6.0", root_attrs=LOOSE_ROOT),
    "versione free text": dovuti(versione="qualsiasi"),
    "loose declaration": dovuti(decl="<?xml version='1.0' encoding='utf-8' standalone='yes' ?>\r\n\t"),
    "no declaration": dovuti(decl=""),
    "with iuv": dovuti().replace(b"<tipoVersamento>ALL</tipoVersamento>",
                                 b"<tipoVersamento>ALL</tipoVersamento>"
                                 b"<identificativoUnivocoVersamento>RF23000000000000001</identificativoUnivocoVersamento>"),
    "prefixed": prefixed(dovuti(singolo() + FULL_ITEM)),
    "latin-1 declared and encoded": dovuti(decl='<?xml version="1.0" encoding="ISO-8859-1"?>'
                                           ).decode().replace("Mario Rossi", "Niccolò Rossi").encode("latin-1"),
}

DOVUTI_INVALID = {
    "missing anagrafica": dovuti().replace(b"<anagraficaPagatore>Mario Rossi</anagraficaPagatore>", b""),
    "amount without decimals": dovuti(singolo(importo="100")),
    "amount zero": dovuti(singolo(importo="0.00")),
    "amount comma": dovuti(singolo(importo="100,00")),
    "six items": dovuti("".join(singolo(f"IUD{i}") for i in range(6))),
    "no items": dovuti(""),
    "wrong order": dovuti().replace(b"<civicoPagatore>1</civicoPagatore>", b"").replace(
        b"<capPagatore>30100</capPagatore>", b"<capPagatore>30100</capPagatore><civicoPagatore>1</civicoPagatore>"),
    "tipo identificativo X": dovuti().replace(b">F</tipoIdentificativo", b">X</tipoIdentificativo"),
    "provincia three letters": dovuti().replace(b">VE</provinciaPagatore", b">VEN</provinciaPagatore"),
    "nazione lower case": dovuti().replace(b">IT</nazione", b">it</nazione"),
    "bad email": dovuti().replace(b"mario.rossi@example.it", b"mario rossi"),
    "bad datiSpecificiRiscossione": dovuti().replace(b"9/0101100IM/", b"5/0101100IM/"),
    "empty bilancio": dovuti(singolo(extra="<bilancio></bilancio>")),
    "bollo tipo 02": dovuti(FULL_ITEM.replace("<tipoBollo>01", "<tipoBollo>02")),
    "versione too long": dovuti(versione="6.2.0.0.0.0.0.0.0"),
    "wrong namespace": dovuti().replace(ENTE_NS.encode(), PAY_NS.encode()),
    "unqualified children": dovuti().replace(f' xmlns="{ENTE_NS}"'.encode(),
                                             f' xmlns:e="{ENTE_NS}"'.encode()).replace(b"<Dovuti", b"<e:Dovuti")
    .replace(b"</Dovuti>", b"</e:Dovuti>"),
    "unknown element": dovuti(singolo(extra="<note>x</note>")),
}


def versamento(dati: str, azione: str = "I", soggetto: str = SOGGETTO) -> bytes:
    return (f'<Versamento xmlns="{ENTE_NS}"><versioneOggetto>6.2.0</versioneOggetto>{soggetto}'
            f"<datiVersamento>{dati}</datiVersamento><azione>{azione}</azione></Versamento>").encode()


VERSAMENTO_DATI = ("<dataEsecuzionePagamento>2024-12-31</dataEsecuzionePagamento><tipoVersamento>ALL</tipoVersamento>"
                   "<identificativoUnivocoVersamento>RF23000000000000001</identificativoUnivocoVersamento>"
                   "<identificativoUnivocoDovuto>IUD0001</identificativoUnivocoDovuto>"
                   "<importoSingoloVersamento>50.00</importoSingoloVersamento>"
                   "<commissioneCaricoPA>0.00</commissioneCaricoPA>"
                   "<identificativoTipoDovuto>TARI</identificativoTipoDovuto>"
                   "<causaleVersamento>Tassa rifiuti</causaleVersamento>"
                   f"<datiSpecificiRiscossione>9/0101100IM/</datiSpecificiRiscossione>{BILANCIO}")
VERSAMENTO_MINIMAL = ("<importoSingoloVersamento>50.00</importoSingoloVersamento>"
                      "<identificativoTipoDovuto>TARI</identificativoTipoDovuto>"
                      "<causaleVersamento>c</causaleVersamento>"
                      "<datiSpecificiRiscossione>9/abc</datiSpecificiRiscossione>")

VERSAMENTO_VALID = {
    "full": versamento(VERSAMENTO_DATI),
    "minimal without payer": versamento(VERSAMENTO_MINIMAL, soggetto=""),
    "azione any single char": versamento(VERSAMENTO_MINIMAL, azione="9"),
}
VERSAMENTO_INVALID = {
    "azione two chars": versamento(VERSAMENTO_MINIMAL, azione="IM"),
    "missing azione": versamento(VERSAMENTO_MINIMAL).replace(b"<azione>I</azione>", b""),
    "bad due date": versamento(VERSAMENTO_DATI.replace("2024-12-31", "31/12/2024")),
    "azione before datiVersamento": versamento(VERSAMENTO_MINIMAL).replace(b"<azione>I</azione>", b"").replace(
        b"<datiVersamento>", b"<azione>I</azione><datiVersamento>"),
    "negative commissione": versamento(VERSAMENTO_DATI.replace(">0.00<", ">-1.00<")),
}


def enti_secondari(dsr: str = "9/0101100IM/x", extra: str = "") -> bytes:
    return (f'<DovutiEntiSecondari xmlns="{ENTE_NS}"><versioneOggetto>6.2.0</versioneOggetto>'
            "<datiVersamentoEntiSecondari><codiceFiscaleBeneficiario>80007580279</codiceFiscaleBeneficiario>"
            "<denominazioneBeneficiario>Comune secondario</denominazioneBeneficiario>"
            f"<ibanAccreditoBeneficiario>IT60X0542811101000000123456</ibanAccreditoBeneficiario>{extra}"
            f"<datiSpecificiRiscossione>{dsr}</datiSpecificiRiscossione>"
            "<importoSingoloVersamento>12.34</importoSingoloVersamento>"
            "</datiVersamentoEntiSecondari></DovutiEntiSecondari>").encode()


ENTI_SECONDARI_VALID = {
    "minimal": enti_secondari(),
    "address and causale": enti_secondari(extra="<indirizzoBeneficiario>Piazza</indirizzoBeneficiario>"
                                                "<nazioneBeneficiario>Italia</nazioneBeneficiario>"
                                                "<causaleVersamento>quota</causaleVersamento>"),
    "empty tail after code": enti_secondari(dsr="9/0101100IM/"),
}
ENTI_SECONDARI_INVALID = {
    "dsr must start with 9": enti_secondari(dsr="0/0101100IM/x"),
    "dsr code shape": enti_secondari(dsr="9/01011IM/x"),
    "causale after dsr": enti_secondari().replace(
        b"<importoSingoloVersamento>", b"<causaleVersamento>q</causaleVersamento><importoSingoloVersamento>"),
}


# --- builder fixtures --------------------------------------------------------------------------------

PAGATORE = Soggetto(IdentificativoUnivoco("F", "RSSMRA80A01H501U"), "Mario Rossi", indirizzo="Via Roma",
                    civico="1", cap="30100", localita="Venezia", provincia="VE", nazione="IT",
                    email="mario.rossi@example.it")
ENTE = Istituto(IdentificativoUnivoco("G", "80007580279"), "Comune di Venezia", provincia="VE", nazione="IT")
PSP = Istituto(IdentificativoUnivoco("B", "UNCRITMM"), "Banca di prova", codice_unit_oper="001")
DOMINIO = Dominio("80007580279", "80007580279_01")


def ricevuta_pagati(**changes) -> RicevutaPagati:
    base = RicevutaPagati(
        dominio=DOMINIO, identificativo_messaggio_ricevuta="RT-0001",
        data_ora_messaggio_ricevuta=datetime(2024, 5, 17, 10, 30, 0, 123456),
        riferimento_messaggio_richiesta="RPT-0001", riferimento_data_richiesta=date(2024, 5, 17),
        istituto_attestante=PSP, ente_beneficiario=ENTE,
        soggetto_pagatore=replace(PAGATORE, provincia="Venezia"),
        codice_esito_pagamento="0", importo_totale_pagato=Decimal("150.50"),
        iuv="RF23000000000000001", codice_contesto_pagamento="n/a",
        pagamenti=(
            SingoloPagato("IUD0001", Decimal("100"), date(2024, 5, 17), "IUR0001", "x" * 300, "9/0101100IM/",
                          esito="ESEGUITO", indice=1, commissioni_psp=Decimal("1.00"),
                          allegato=Allegato("ES", b"<esito>ok</esito>")),
            SingoloPagato("IUD0002", Decimal("50.50"), date(2024, 5, 17), "IUR0002", "Bollo", "9/0101100IM/"),
        ))
    return replace(base, **changes)


RPT = Rpt(dominio=DOMINIO, identificativo_messaggio_richiesta="RPT-0001",
          data_ora_messaggio_richiesta=datetime(2024, 5, 17, 10, 0, 0), soggetto_pagatore=PAGATORE,
          soggetto_versante=replace(PAGATORE, provincia="Venezia"),
          ente_beneficiario=ENTE, data_esecuzione_pagamento=date(2024, 5, 17), tipo_versamento="PO",
          iuv="RF23000000000000001", codice_contesto_pagamento="n/a",
          singoli=(SingoloVersamentoRpt(Decimal("100.00"), "Tassa rifiuti", "9/0101100IM/",
                                        iban_accredito="IT60X0542811101000000123456", bic_accredito="UNCRITMM"),
                   SingoloVersamentoRpt(Decimal("16.00"), "Bollo", "9/0101100IM/",
                                        commissione_carico_pa=Decimal("0.50"),
                                        marca_bollo=MarcaBollo("01", "YWJjZA==", "VE"))))

RT = Rt(dominio=DOMINIO, identificativo_messaggio_ricevuta="RT-0001",
        data_ora_messaggio_ricevuta=datetime(2024, 5, 17, 10, 31, 5),
        riferimento_messaggio_richiesta="RPT-0001", riferimento_data_richiesta=date(2024, 5, 17),
        istituto_attestante=PSP, ente_beneficiario=ENTE, soggetto_pagatore=PAGATORE,
        soggetto_versante=PAGATORE, codice_esito_pagamento="0", importo_totale_pagato=Decimal("116.00"),
        iuv="RF23000000000000001", codice_contesto_pagamento="n/a",
        pagamenti=(SingoloPagamentoRt(Decimal("100.00"), date(2024, 5, 17), "IUR0001", "Tassa rifiuti",
                                      "9/0101100IM/", esito="ESEGUITO", commissioni_psp=Decimal("0.00"),
                                      commissioni_pa=Decimal("0.50"), allegato=Allegato("BD", b"\x00\xffbollo")),
                   SingoloPagamentoRt(Decimal("16.00"), date(2024, 5, 17), "IUR0002", "Bollo", "9/0101100IM/")))

FLUSSO_HEADER = FlussoHeader(
    identificativo_flusso="2024-05-17ABI03069-S0000001", data_ora_flusso=datetime(2024, 5, 17, 23, 0, 0),
    identificativo_univoco_regolamento="TRN 0001/2024", data_regolamento=date(2024, 5, 18),
    mittente=IdentificativoUnivoco("B", "ABI03069"), denominazione_mittente="Banca di prova",
    codice_bic_banca_di_riversamento="BCITITMM", ricevente="80007580279",
    denominazione_ricevente="Comune di Venezia & co.")
FLUSSO_ROWS = [
    PagamentoFlusso("RF23000000000000001", "IUR0001", Decimal("100.00"), "0", date(2024, 5, 17), indice=1),
    PagamentoFlusso("RF23000000000000002", "IUR0002", Decimal("0.01"), "9", date(2024, 5, 16)),
    PagamentoFlusso("RF23000000000000003", "IUR0003", Decimal("899999999.99"), "3", date(2024, 5, 16), indice=5),
]


def rpt_bytes() -> bytes:
    return build_rpt(RPT)


def rt_bytes() -> bytes:
    return build_rt(RT)


def flusso_bytes() -> bytes:
    return build_flusso(FLUSSO_HEADER, FLUSSO_ROWS)


def pagati_bytes() -> bytes:
    return build_pagati(ricevuta_pagati())


def pagati_cr_bytes() -> bytes:
    return build_pagati_con_ricevuta(ricevuta_pagati())


def sub(data: bytes, old: str, new: str) -> bytes:
    assert old.encode() in data, old
    return data.replace(old.encode(), new.encode(), 1)


SAMPLES: list[tuple[str, str, bytes, bool]] = (
    [("Dovuti", name, doc, True) for name, doc in DOVUTI_VALID.items()]
    + [("Dovuti", name, doc, False) for name, doc in DOVUTI_INVALID.items()]
    + [("Versamento", name, doc, True) for name, doc in VERSAMENTO_VALID.items()]
    + [("Versamento", name, doc, False) for name, doc in VERSAMENTO_INVALID.items()]
    + [("DovutiEntiSecondari", name, doc, True) for name, doc in ENTI_SECONDARI_VALID.items()]
    + [("DovutiEntiSecondari", name, doc, False) for name, doc in ENTI_SECONDARI_INVALID.items()]
    + [
        ("Pagati", "built", pagati_bytes(), True),
        ("Pagati", "no singoli (esito 1)", build_pagati(ricevuta_pagati(codice_esito_pagamento="1",
                                                                        pagamenti=())), True),
        ("Pagati", "esito 5", sub(pagati_bytes(), "<codiceEsitoPagamento>0<", "<codiceEsitoPagamento>5<"), False),
        ("Pagati", "ConRicevuta fields in Pagati", sub(pagati_bytes(), "</datiSpecificiRiscossione>",
                                                       "</datiSpecificiRiscossione><indiceDatiSingoloPagamento>1"
                                                       "</indiceDatiSingoloPagamento>"), False),
        ("PagatiConRicevuta", "built", pagati_cr_bytes(), True),
        ("PagatiConRicevuta", "indice 6", sub(pagati_cr_bytes(), "<indiceDatiSingoloPagamento>1<",
                                              "<indiceDatiSingoloPagamento>6<"), False),
        ("PagatiConRicevuta", "allegato not base64", re.sub(rb"<testoAllegato>[^<]*", b"<testoAllegato>AAA",
                                                            pagati_cr_bytes()), False),
        ("RPT", "built", rpt_bytes(), True),
        ("RPT", "prefixed", prefixed(rpt_bytes(), "pay_i"), True),
        ("RPT", "firmaRicevuta 1", sub(rpt_bytes(), "<firmaRicevuta>0<", "<firmaRicevuta>1<"), False),
        ("RPT", "tipoVersamento XX", sub(rpt_bytes(), "<tipoVersamento>PO<", "<tipoVersamento>XX<"), False),
        ("RPT", "capital C in the RPT", rpt_bytes().replace(b"codiceContestoPagamento", b"CodiceContestoPagamento"),
         False),
        ("RPT", "codice fiscale too long", sub(rpt_bytes(), "RSSMRA80A01H501U", "RSSMRA80A01H501UX"), False),
        ("RPT", "bad IBAN", sub(rpt_bytes(), "IT60X0542811101000000123456", "60IT"), False),
        ("RPT", "commissione PA zero", sub(rpt_bytes(), ">0.50<", ">0.00<"), False),
        ("RPT", "bad email pattern", sub(rpt_bytes(), "mario.rossi@example.it", "mario@@example"), False),
        ("RPT", "hash over 70", sub(rpt_bytes(), "YWJjZA==", "QUFB" * 18), False),
        ("RT", "built", rt_bytes(), True),
        ("RT", "importo 0.00 allowed", sub(rt_bytes(), "<importoTotalePagato>116.00<",
                                           "<importoTotalePagato>0.00<"), True),
        ("RT", "lower-case c in the RT", rt_bytes().replace(b"CodiceContestoPagamento",
                                                              b"codiceContestoPagamento"), False),
        ("RT", "esito 7", sub(rt_bytes(), "<codiceEsitoPagamento>0<", "<codiceEsitoPagamento>7<"), False),
        ("RT", "six singoli", sub(rt_bytes(), "</datiPagamento>", "".join(
            ["<datiSingoloPagamento>" + rt_bytes().decode().split("<datiSingoloPagamento>")[2].split(
                "</datiPagamento>")[0]] * 4) + "</datiPagamento>"), False),
        ("FlussoRiversamento", "built", flusso_bytes(), True),
        ("FlussoRiversamento", "versione 1.1", sub(flusso_bytes(), ">1.0<", ">1.1<"), True),
        ("FlussoRiversamento", "versione 6.2.0", sub(flusso_bytes(), ">1.0<", ">6.2.0<"), False),
        ("FlussoRiversamento", "esito 4 (newer SANP)", sub(flusso_bytes(), "<codiceEsitoSingoloPagamento>0<",
                                                           "<codiceEsitoSingoloPagamento>4<"), False),
        ("FlussoRiversamento", "flow id with space", sub(flusso_bytes(), "-S0000001", " S0000001"), False),
        ("FlussoRiversamento", "row amount 0.00", sub(flusso_bytes(), ">0.01<", ">0.00<"), False),
        ("FlussoRiversamento", "short denominazione mittente", sub(flusso_bytes(), ">Banca di prova<", ">BP<"),
         False),
        ("FlussoRiversamento", "no rows", flusso_bytes().split(b"<datiSingoliPagamenti>")[0]
         + b"</FlussoRiversamento>", False),
        ("FlussoRiversamento", "numero 0", sub(flusso_bytes(), "<numeroTotalePagamenti>3<",
                                               "<numeroTotalePagamenti>0<"), False),
    ])


@pytest.mark.parametrize("kind, name, data, valid", SAMPLES, ids=[f"{s[0]}-{s[1]}" for s in SAMPLES])
def test_project_schema_verdict(kind: str, name: str, data: bytes, valid: bool) -> None:
    assert project_accepts(kind, data) is valid


@needs_reference
@pytest.mark.parametrize("kind, name, data, valid", SAMPLES, ids=[f"{s[0]}-{s[1]}" for s in SAMPLES])
def test_reference_schema_agrees(kind: str, name: str, data: bytes, valid: bool) -> None:
    assert reference_accepts(kind, data) is valid


# --- type-by-type equivalence with the official schemas ------------------------------------------------

XS = "{http://www.w3.org/2001/XMLSchema}"


def _flatten(node: etree._Element, groups: dict[str, etree._Element]) -> list:
    """Particles of a content model with group refs and plain nested sequences inlined."""
    out: list = []
    for child in node:
        if not isinstance(child.tag, str) or child.tag == XS + "annotation":
            continue
        kind = etree.QName(child).localname
        occurs = (child.get("minOccurs", "1"), child.get("maxOccurs", "1"))
        if kind == "group":
            out.extend(_flatten(groups[child.get("ref").split(":")[-1]], groups))
        elif kind == "sequence" and occurs == ("1", "1"):
            out.extend(_flatten(child, groups))
        elif kind == "element":
            out.append((child.get("name"), child.get("type", "").split(":")[-1], occurs))
        else:
            out.append((kind, occurs, tuple(_flatten(child, groups))))
    return out


def _model(path: Path) -> dict:
    root = etree.parse(str(path)).getroot()
    groups = {g.get("name"): [c for c in g if c.tag != XS + "annotation"][0] for g in root.iter(XS + "group")
              if g.get("name")}
    model: dict = {"@": (root.get("targetNamespace"), root.get("elementFormDefault"))}
    for decl in root:
        if not isinstance(decl.tag, str) or decl.get("name") is None or decl.tag == XS + "group":
            continue
        kind = etree.QName(decl).localname
        if kind == "simpleType":
            restriction = decl.find(XS + "restriction")
            facets = sorted((etree.QName(f).localname, f.get("value")) for f in restriction
                            if isinstance(f.tag, str) and f.tag != XS + "annotation")
            model[f"st {decl.get('name')}"] = (restriction.get("base").split(":")[-1], facets)
        elif kind == "complexType":
            model[f"ct {decl.get('name')}"] = _flatten(decl, groups)
        else:
            model[f"{kind} {decl.get('name')}"] = decl.get("type", "").split(":")[-1]
    return model


@needs_reference
@pytest.mark.parametrize("name", sorted(REFERENCE_XSD))
def test_schema_structure_matches_reference(name: str) -> None:
    ours, theirs = _model(schema_path("RPT").parent / name), _model(REFERENCE_XSD[name])
    assert ours.keys() == theirs.keys()
    for key in theirs:
        assert ours[key] == theirs[key], key


def test_project_schemas_import_nothing_remote() -> None:
    for name in REFERENCE_XSD:
        text = (schema_path("RPT").parent / name).read_text()
        assert "<xs:import" not in text and "<xs:include" not in text and "http://www.w3.org/2000/09" not in text


# --- validate() ----------------------------------------------------------------------------------------

def test_error_message_names_line_and_problem() -> None:
    for data in (dovuti(singolo(importo="100")), dovuti(singolo(importo="1.5")).replace(b"><", b">\n<")):
        lines = data.decode().splitlines()
        expected = 1 + next(i for i, line in enumerate(lines) if "<importoSingoloVersamento>" in line)
        with pytest.raises(DocumentInvalid) as info:
            validate("Dovuti", data)
        assert str(info.value).startswith(f"line {expected}: ")
        assert "importoSingoloVersamento" in info.value.detail and "pattern" in info.value.detail


def test_root_must_be_the_expected_kind() -> None:
    with pytest.raises(DocumentInvalid, match="is not 'Dovuti'"):
        validate("Dovuti", pagati_bytes())
    with pytest.raises(DocumentInvalid, match="'Versamento'"):
        validate("Versamento", dovuti())
    # A bare bilancio is a global element of the schema, yet never a request.
    with pytest.raises(DocumentInvalid):
        validate("Dovuti", f'<bilancio xmlns="{ENTE_NS}">{BILANCIO[10:]}'.encode())


@pytest.mark.parametrize("data", [
    b"<Dovuti",
    b"",
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "y">]><Dovuti/>',
    b"   <?xml version='1.0'?><Dovuti/>",
], ids=["truncated", "empty", "dtd", "space before declaration"])
def test_not_well_formed_or_unsafe_is_document_invalid(data: bytes) -> None:
    with pytest.raises(DocumentInvalid):
        validate("Dovuti", data)


def test_unknown_kind() -> None:
    with pytest.raises(KeyError):
        validate("Pagamento", dovuti())  # type: ignore[arg-type]


# --- parsers -------------------------------------------------------------------------------------------

def test_parse_dovuti_reads_every_field() -> None:
    doc = parse_dovuti(validate("Dovuti", prefixed(dovuti(singolo() + FULL_ITEM, versione="6.0"))))
    assert doc.versione_oggetto == "6.0" and doc.tipo_versamento == "ALL" and doc.iuv is None
    assert doc.soggetto_pagatore == PAGATORE
    first, second = doc.singoli
    assert first.iud == "IUD0001" and first.importo == Decimal("100.00") and isinstance(first.importo, Decimal)
    assert first.commissione_carico_pa is None and first.marca_bollo is None and first.bilancio is None
    assert (first.identificativo_tipo_dovuto, first.causale, first.dati_specifici_riscossione) == \
        ("TARI", "Tassa rifiuti 2024", "9/0101100IM/")
    assert second.commissione_carico_pa == Decimal("1.50")
    assert second.marca_bollo == MarcaBollo("01", "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo=", "VE")
    # Stored as MyPay stores it: no namespace, no whitespace.
    assert second.bilancio == ("<bilancio><capitolo><codCapitolo>CAP01</codCapitolo><accertamento>"
                               "<codAccertamento>ACC1</codAccertamento><importo>50.00</importo></accertamento>"
                               "</capitolo></bilancio>")
    assert bilancio_total(second.bilancio) == second.importo


def test_parse_dovuti_keeps_a_deprecated_iuv_for_the_service_to_refuse() -> None:
    assert parse_dovuti(validate("Dovuti", DOVUTI_VALID["with iuv"])).iuv == "RF23000000000000001"


def test_parse_versamento() -> None:
    full = parse_versamento(validate("Versamento", VERSAMENTO_VALID["full"]))
    assert full.azione == "I" and full.data_esecuzione_pagamento == date(2024, 12, 31)
    assert (full.iuv, full.iud, full.tipo_versamento) == ("RF23000000000000001", "IUD0001", "ALL")
    assert full.importo == Decimal("50.00") and full.commissione_carico_pa == Decimal("0.00")
    assert full.soggetto_pagatore == PAGATORE and bilancio_total(full.bilancio or "") == Decimal("50.00")
    minimal = parse_versamento(validate("Versamento", VERSAMENTO_VALID["minimal without payer"]))
    assert minimal.soggetto_pagatore is None and minimal.data_esecuzione_pagamento is None
    assert minimal.iuv is None and minimal.bilancio is None


def test_parse_dovuti_enti_secondari() -> None:
    doc = parse_dovuti_enti_secondari(validate("DovutiEntiSecondari", ENTI_SECONDARI_VALID["address and causale"]))
    assert doc.codice_fiscale_beneficiario == "80007580279"
    assert doc.iban_accredito_beneficiario == "IT60X0542811101000000123456"
    assert doc.importo == Decimal("12.34") and doc.causale == "quota" and doc.nazione_beneficiario == "Italia"
    assert doc.cap_beneficiario is None


def test_parsers_refuse_the_wrong_root() -> None:
    with pytest.raises(DocumentInvalid):
        parse_versamento(parse_bytes(dovuti()))
    with pytest.raises(DocumentInvalid):
        parse_rt(parse_bytes(rpt_bytes()))


# --- builders ------------------------------------------------------------------------------------------

@needs_reference
@pytest.mark.parametrize("kind, build", [
    ("Pagati", pagati_bytes), ("PagatiConRicevuta", pagati_cr_bytes), ("RPT", rpt_bytes),
    ("RT", rt_bytes), ("FlussoRiversamento", flusso_bytes)])
def test_builder_output_is_valid_against_the_reference(kind: str, build) -> None:
    data = build()
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    reference_schema(kind).assertValid(parse_bytes(data))
    validate(kind, data)


def test_pagati_content() -> None:
    root = validate("PagatiConRicevuta", pagati_cr_bytes())
    ns = {"e": ENTE_NS}
    assert root.findtext("e:soggettoPagatore/e:provinciaPagatore", namespaces=ns) == "Ve"
    assert root.findtext("e:dataOraMessaggioRicevuta", namespaces=ns) == "2024-05-17T10:30:00"
    assert root.findtext("e:datiPagamento/e:importoTotalePagato", namespaces=ns) == "150.50"
    items = root.findall("e:datiPagamento/e:datiSingoloPagamento", ns)
    assert [i.findtext("e:singoloImportoPagato", namespaces=ns) for i in items] == ["100.00", "50.50"]
    assert len(items[0].findtext("e:causaleVersamento", namespaces=ns)) == 140
    assert base64.b64decode(items[0].findtext("e:allegatoRicevuta/e:testoAllegato", namespaces=ns)) == \
        b"<esito>ok</esito>"
    assert items[1].find("e:indiceDatiSingoloPagamento", ns) is None
    plain = validate("Pagati", pagati_bytes())
    assert plain.find(".//e:commissioniApplicatePSP", ns) is None and plain.find(".//e:allegatoRicevuta", ns) is None
    # Unprefixed tags, for the clients that search the text for '<tagName>'.
    assert b"<identificativoUnivocoVersamento>RF23000000000000001</identificativoUnivocoVersamento>" in pagati_bytes()


def test_amounts_are_never_rounded_or_floats() -> None:
    with pytest.raises(ValueError):
        build_pagati(ricevuta_pagati(importo_totale_pagato=Decimal("1.005")))
    with pytest.raises(TypeError):
        build_pagati(ricevuta_pagati(importo_totale_pagato=1.5))


def test_rpt_round_trip_and_total() -> None:
    data = rpt_bytes()
    parsed = parse_rpt(validate("RPT", data))
    assert parsed == replace(RPT, importo_totale_da_versare=Decimal("116.00"))
    assert b"<importoTotaleDaVersare>116.00</importoTotaleDaVersare>" in data
    assert b"<codiceContestoPagamento>n/a</codiceContestoPagamento>" in data


def test_rt_round_trip_and_capital_c() -> None:
    data = rt_bytes()
    assert b"<CodiceContestoPagamento>n/a</CodiceContestoPagamento>" in data
    assert b"<codiceContestoPagamento>" not in data
    parsed = parse_rt(validate("RT", data))
    assert parsed == RT and parsed.pagato
    assert parsed.pagamenti[0].allegato == Allegato("BD", b"\x00\xffbollo")
    assert parsed.pagamenti[1].commissioni_psp is None


def test_rt_not_paid_without_singoli() -> None:
    rt = replace(RT, codice_esito_pagamento="1", importo_totale_pagato=Decimal("0"), pagamenti=(),
                 soggetto_versante=None)
    parsed = parse_rt(validate("RT", build_rt(rt)))
    assert parsed == replace(rt, importo_totale_pagato=Decimal("0.00")) and not parsed.pagato


def test_rt_parse_accepts_timezones_and_long_fractions() -> None:
    data = sub(rt_bytes(), "2024-05-17T10:31:05", "2024-05-17T10:31:05.1234567+02:00")
    data = sub(data, "<riferimentoDataRichiesta>2024-05-17", "<riferimentoDataRichiesta>2024-05-17Z")
    parsed = parse_rt(validate("RT", data))
    assert parsed.data_ora_messaggio_ricevuta.utcoffset().total_seconds() == 7200
    assert parsed.riferimento_data_richiesta == date(2024, 5, 17)


# --- FlussoRiversamento ----------------------------------------------------------------------------------

def test_flusso_round_trip_from_bytes_and_path(tmp_path: Path) -> None:
    data = flusso_bytes()
    path = tmp_path / "flusso.xml"
    path.write_bytes(data)
    for source in (data, path, str(path)):
        header, rows = parse_flusso(source)
        assert header == replace(FLUSSO_HEADER, numero_totale_pagamenti=3,
                                 importo_totale_pagamenti=Decimal("900000100.00"))
        assert list(rows) == FLUSSO_ROWS
    assert b"Comune di Venezia &amp; co." in data


def test_flusso_parse_is_lenient_on_newer_esito_codes() -> None:
    data = sub(flusso_bytes(), "<codiceEsitoSingoloPagamento>9<", "<codiceEsitoSingoloPagamento>8<")
    _, rows = parse_flusso(data)
    assert [row.codice_esito for row in rows] == ["0", "8", "3"]


def test_flusso_parse_is_incremental() -> None:
    # A broken tail is only met after the first rows were handed out: nothing waited for the whole file.
    data = flusso_bytes()
    truncated = data[: data.rindex(b"<datiSingoliPagamenti>") + 30]
    header, rows = parse_flusso(truncated)
    assert header.identificativo_flusso == "2024-05-17ABI03069-S0000001"
    assert next(rows).iur == "IUR0001" and next(rows).iur == "IUR0002"
    with pytest.raises(DocumentInvalid):
        next(rows)


@pytest.mark.parametrize("data", [
    b'<!DOCTYPE x [<!ENTITY a "b">]><FlussoRiversamento/>',
    f'<Dovuti xmlns="{ENTE_NS}"><versioneOggetto>1</versioneOggetto></Dovuti>'.encode(),
    b"<FlussoRiversamento",
], ids=["dtd", "other document", "malformed"])
def test_flusso_parse_refuses(data: bytes) -> None:
    with pytest.raises(DocumentInvalid):
        header, rows = parse_flusso(data)
        list(rows)


def test_flusso_100k_rows_streaming(tmp_path: Path) -> None:
    started = time.perf_counter()
    rows = [PagamentoFlusso(f"RF{i:017d}", f"IUR{i:010d}", Decimal(i % 1000 + 1) / 100, "0",
                            date(2024, 5, 16 + i % 2), indice=i % 5 + 1) for i in range(100_000)]
    path = tmp_path / "big.xml"
    with path.open("wb") as out:
        write_flusso(out, FLUSSO_HEADER, rows)
    expected_total = sum((row.importo for row in rows), Decimal("0"))
    del rows

    header, stream = parse_flusso(path)
    count, total = 0, Decimal("0")
    for row in stream:
        count += 1
        total += row.importo
    assert header.numero_totale_pagamenti == count == 100_000
    assert header.importo_totale_pagamenti == total == expected_total == Decimal("500500.00")
    assert time.perf_counter() - started < 6
