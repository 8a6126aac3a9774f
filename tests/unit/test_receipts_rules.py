"""Rules of the node-facing side that need no server: notice decoding, transfer categories, postal IBANs,
the RT-against-RPT checks and the enveloped XML signature of legacy RTs."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest
from lxml import etree

from gateway.payments import documents, iuv as iuv_rules, legacy_rt, notices
from gateway.payments.documents import (Dominio, IdentificativoUnivoco, Istituto, Rpt, Rt, SingoloPagamentoRt,
                                        SingoloVersamentoRpt, Soggetto)

EC = "80007580279"
IBAN = "IT60X0542811101000000123456"
PAGATORE = Soggetto(IdentificativoUnivoco("F", "RSSMRA80A01H501U"), "Mario Rossi")
ENTE = Istituto(IdentificativoUnivoco("G", EC), "Comune di Esempio")
PSP = Istituto(IdentificativoUnivoco("B", "SIMPSP01"), "PSP Simulato")
IUV = iuv_rules.make_iuv17("01", 42)

RPT = Rpt(dominio=Dominio(EC), identificativo_messaggio_richiesta="RPT-1",
          data_ora_messaggio_richiesta=datetime(2031, 5, 4, 10, 0), soggetto_pagatore=PAGATORE,
          ente_beneficiario=ENTE, data_esecuzione_pagamento=date(2031, 5, 4), tipo_versamento="PO", iuv=IUV,
          codice_contesto_pagamento="CCP1",
          singoli=(SingoloVersamentoRpt(Decimal("100.00"), "TARI", "9/0101100IM/", iban_accredito=IBAN),
                   SingoloVersamentoRpt(Decimal("20.00"), "Quota", "9/0101100IM/", iban_accredito=IBAN)))


def _paid(*amounts: str) -> tuple[SingoloPagamentoRt, ...]:
    return tuple(SingoloPagamentoRt(Decimal(a), date(2031, 5, 4), f"IUR{i}", "TARI", "9/0101100IM/")
                 for i, a in enumerate(amounts))


RT = Rt(dominio=Dominio(EC), identificativo_messaggio_ricevuta="RT-1", data_ora_messaggio_ricevuta=datetime(2031, 5, 4, 10, 5),
        riferimento_messaggio_richiesta="RPT-1", riferimento_data_richiesta=date(2031, 5, 4), istituto_attestante=PSP,
        ente_beneficiario=ENTE, soggetto_pagatore=PAGATORE, codice_esito_pagamento="0",
        importo_totale_pagato=Decimal("120.00"), iuv=IUV, codice_contesto_pagamento="CCP1",
        pagamenti=_paid("100.00", "20.00"))


# --- RT against RPT -------------------------------------------------------------------------------

def test_a_consistent_rt_has_no_problems() -> None:
    assert legacy_rt.problems_against_rpt(RT, RPT) == []
    refused = replace(RT, codice_esito_pagamento="1", importo_totale_pagato=Decimal("0.00"), pagamenti=())
    assert legacy_rt.problems_against_rpt(refused, RPT) == []
    partial = replace(RT, codice_esito_pagamento="2", importo_totale_pagato=Decimal("100.00"),
                      pagamenti=_paid("100.00", "0.00"))
    assert legacy_rt.problems_against_rpt(partial, RPT) == []


@pytest.mark.parametrize("changes, words", [
    (dict(iuv="X" * 17), "identificativoUnivocoVersamento"),
    (dict(codice_contesto_pagamento="OTHER"), "CodiceContestoPagamento"),
    (dict(dominio=Dominio("80000000001")), "identificativoDominio"),
    (dict(riferimento_messaggio_richiesta="RPT-2"), "riferimentoMessaggioRichiesta"),
    (dict(pagamenti=()), "senza datiSingoloPagamento"),
    (dict(pagamenti=_paid("120.00")), "1 datiSingoloPagamento per 2"),
    (dict(importo_totale_pagato=Decimal("119.00"), pagamenti=_paid("99.00", "20.00")), "importoTotaleDaVersare"),
    (dict(importo_totale_pagato=Decimal("121.00")), "somma"),
    (dict(codice_esito_pagamento="1", importo_totale_pagato=Decimal("120.00")), "diverso da 0.00"),
    (dict(codice_esito_pagamento="2", importo_totale_pagato=Decimal("110.00"), pagamenti=_paid("90.00", "20.00")),
     "né 0.00"),
])
def test_rt_contradicting_its_rpt(changes: dict, words: str) -> None:
    problems = legacy_rt.problems_against_rpt(replace(RT, **changes), RPT)
    assert problems and any(words in problem for problem in problems), problems


# --- notices --------------------------------------------------------------------------------------

def test_decode_notice_only_for_the_ente_s_own_codes() -> None:
    ente = SimpleNamespace(aux_digit="3", segregation_code="01", application_code="01")
    assert notices.decode_notice(ente, iuv_rules.notice_number(IUV)) == IUV
    assert notices.decode_notice(ente, "3" + "47" + IUV[2:]) is None  # another segregation code
    assert notices.decode_notice(ente, "2" + IUV) is None  # aux digit 2 is never issued here
    assert notices.decode_notice(ente, "12345") is None
    aux0 = SimpleNamespace(aux_digit="0", segregation_code=None, application_code="07")
    assert notices.decode_notice(aux0, "007" + "123456789012345") == "123456789012345"
    assert notices.decode_notice(aux0, "008" + "123456789012345") is None


def test_transfer_category_and_postal_accounts() -> None:
    assert notices.category("9/0101100IM/", "9/0101100IM/") == "9/0101100IM/"
    assert notices.category("9/0201102IM/", None) == "0201102IM"
    assert notices.category("", None) == "n/a"
    assert notices.is_postal("IT57N0760101600000012345678")
    assert not notices.is_postal(IBAN) and not notices.is_postal(None)


def test_total_amount_includes_the_secondary_quota() -> None:
    dovuto = SimpleNamespace(amount=Decimal("100.00"), secondary={"fiscal_code": "80000000005", "amount": "20.50"})
    assert notices.total_amount(dovuto) == Decimal("120.50")
    assert notices.total_amount(SimpleNamespace(amount=Decimal("7.00"), secondary=None)) == Decimal("7.00")


# --- enveloped XML signature ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def key_and_cert() -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PSP Simulato")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()), cert.public_bytes(serialization.Encoding.PEM))


def _signed_rt(key: bytes, cert: bytes) -> bytes:
    from signxml import XMLSigner

    root = etree.fromstring(documents.build_rt(RT))
    signed = XMLSigner(signature_algorithm="rsa-sha256", digest_algorithm="sha256").sign(root, key=key, cert=cert)
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def test_signed_rt_verified_with_the_configured_certificate(key_and_cert) -> None:
    key, cert = key_and_cert
    data = _signed_rt(key, cert)
    root, flags = legacy_rt.check_signature(data, "3", cert.decode())
    assert flags == [] and root.find(f".//{{{legacy_rt.DSIG_NS}}}Signature") is None
    documents.validate_element("RT", root)  # the signature is out of the way of the schema

    tampered = data.replace(b"120.00", b"999.00", 1)
    with pytest.raises(legacy_rt._SignatureBroken):
        legacy_rt.check_signature(tampered, "3", cert.decode())
    ente = SimpleNamespace(fiscal_code=EC)
    with pytest.raises(Exception) as caught:
        legacy_rt.parse(tampered, "3", cert.decode(), ente)
    assert caught.value.code == "PAA_FIRMA_ERRATA" and caught.value.id == EC


def test_signed_rt_without_a_certificate_is_kept_and_flagged(key_and_cert) -> None:
    key, cert = key_and_cert
    rt, flags = legacy_rt.parse(_signed_rt(key, cert), "3", None, SimpleNamespace(fiscal_code=EC))
    assert flags == [legacy_rt.SIGNATURE_UNVERIFIED] and rt.identificativo_messaggio_ricevuta == "RT-1"


def test_non_xml_signed_envelope_is_an_unknown_signature_type() -> None:
    with pytest.raises(Exception) as caught:
        legacy_rt.parse(b"0\x82\x01\x00binary-cades", "1", None, SimpleNamespace(fiscal_code=EC))
    assert caught.value.code == "PAA_TIPOFIRMA_SCONOSCIUTO"
    with pytest.raises(Exception) as caught:
        legacy_rt.parse(b"<!DOCTYPE x><RT/>", "", None, SimpleNamespace(fiscal_code=EC))
    assert caught.value.code == "PAA_SINTASSI_XSD"
