"""Registering enti and tipi dovuto, and authenticating the SIL of an ente (MyPay's verificaEnte)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import faults, logs
from gateway.enti.credentials import hash_password, verify_password
from gateway.payments.identifiers import is_valid_iban
from storage.models import Ente, TipoDovuto

ENTE_STATES = ("INSERITO", "PRE-ESERCIZIO", "ESERCIZIO")
_FISCAL_CODE = re.compile(r"^[0-9]{11}$")
_TWO_DIGITS = re.compile(r"^[0-9]{2}$")


class RegistryError(ValueError):
    """A registration request that cannot be applied (duplicate, malformed value)."""


@dataclass(frozen=True)
class NewEnte:
    cod_ipa: str
    fiscal_code: str
    name: str
    password: str
    aux_digit: str = "3"
    segregation_code: str | None = None
    application_code: str | None = None
    state: str = "ESERCIZIO"
    payment_model: str = "checkout"


def add_ente(session: Session, new: NewEnte) -> Ente:
    if not new.cod_ipa or len(new.cod_ipa) > 35 or "-" in new.cod_ipa:
        # A dash would break the <codIpa>-<IUF>-<version>.zip naming of import flows.
        raise RegistryError("cod IPA must be 1-35 characters without '-'")
    if not _FISCAL_CODE.match(new.fiscal_code):
        raise RegistryError("the ente's fiscal code must be 11 digits")
    if new.aux_digit not in {"0", "3"}:
        raise RegistryError("aux digit must be 0 or 3")
    if new.aux_digit == "3" and not (new.segregation_code and _TWO_DIGITS.match(new.segregation_code)):
        raise RegistryError("aux digit 3 needs a 2-digit segregation code")
    if new.application_code and not _TWO_DIGITS.match(new.application_code):
        raise RegistryError("application code must be 2 digits")
    if new.state not in ENTE_STATES:
        raise RegistryError(f"state must be one of {', '.join(ENTE_STATES)}")
    if new.payment_model not in {"checkout", "rpt"}:
        raise RegistryError("payment model must be checkout or rpt")
    if len(new.password) < 8:
        raise RegistryError("the SIL password must have at least 8 characters")
    clash = session.scalar(select(Ente).where((Ente.cod_ipa == new.cod_ipa) | (Ente.fiscal_code == new.fiscal_code)))
    if clash is not None:
        raise RegistryError(f"an ente with cod IPA {new.cod_ipa} or fiscal code {new.fiscal_code} exists")
    ente = Ente(cod_ipa=new.cod_ipa, fiscal_code=new.fiscal_code, name=new.name,
                password_hash=hash_password(new.password), aux_digit=new.aux_digit,
                segregation_code=new.segregation_code,
                application_code=new.application_code or new.segregation_code,
                state=new.state, payment_model=new.payment_model)
    session.add(ente)
    session.flush()
    return ente


def get_ente(session: Session, cod_ipa: str) -> Ente:
    ente = session.scalar(select(Ente).where(Ente.cod_ipa == cod_ipa))
    if ente is None:
        raise RegistryError(f"no ente with cod IPA {cod_ipa}")
    return ente


def set_ente_password(session: Session, cod_ipa: str, password: str) -> None:
    if len(password) < 8:
        raise RegistryError("the SIL password must have at least 8 characters")
    get_ente(session, cod_ipa).password_hash = hash_password(password)


def add_tipo_dovuto(session: Session, cod_ipa: str, code: str, description: str, iban: str | None,
                    taxonomy: str | None = None, *, cf_anonimo: bool = False, due_date_required: bool = False,
                    fixed_amount=None) -> TipoDovuto:
    ente = get_ente(session, cod_ipa)
    if not code or len(code) > 64:
        raise RegistryError("tipo dovuto code must be 1-64 characters")
    if iban is not None:
        iban = iban.replace(" ", "").upper()
        if not is_valid_iban(iban):
            raise RegistryError(f"invalid IBAN {iban}")
    elif code != "MARCA_BOLLO_DIGITALE":
        raise RegistryError("a tipo dovuto needs the IBAN it is credited to")
    if session.scalar(select(TipoDovuto).where(TipoDovuto.ente_id == ente.id, TipoDovuto.code == code)):
        raise RegistryError(f"tipo dovuto {code} already exists for {cod_ipa}")
    tipo = TipoDovuto(ente_id=ente.id, code=code, description=description, iban=iban, taxonomy_code=taxonomy,
                      cf_anonimo_allowed=cf_anonimo, due_date_required=due_date_required,
                      fixed_amount=fixed_amount)
    session.add(tipo)
    session.flush()
    return tipo


def set_tipo_dovuto_enabled(session: Session, cod_ipa: str, code: str, enabled: bool) -> None:
    ente = get_ente(session, cod_ipa)
    tipo = session.scalar(select(TipoDovuto).where(TipoDovuto.ente_id == ente.id, TipoDovuto.code == code))
    if tipo is None:
        raise RegistryError(f"no tipo dovuto {code} for {cod_ipa}")
    tipo.enabled = enabled


def authenticate(session: Session, cod_ipa: str | None, password: str | None, *, check_state: bool = True,
                 fault_id: str | None = None) -> Ente:
    """MyPay's verificaEnte: one PAA_ENTE_NON_VALIDO fault, the last failing check giving its text.

    An unknown ente and a wrong password are told apart only by the faultString, as MyPay does: a client
    can learn whether a cod IPA exists (public information anyway, the IPA index is open data).
    """
    cod_ipa = (cod_ipa or "").strip()
    logs.bind_request(cod_ipa_ente=cod_ipa or None)
    ente = session.scalar(select(Ente).where(Ente.cod_ipa == cod_ipa)) if cod_ipa else None
    fault_id = fault_id if fault_id is not None else cod_ipa
    if ente is None or not ente.enabled:
        raise faults.Fault(faults.PAA_ENTE_NON_VALIDO, f"Codice IPA Ente [{cod_ipa}] non valido o password errata",
                           id=fault_id)
    if not verify_password(password, ente.password_hash):
        raise faults.Fault(faults.PAA_ENTE_NON_VALIDO, f"Password non valida per ente [{cod_ipa}]", id=fault_id)
    if check_state and ente.state == "INSERITO":
        raise faults.Fault(faults.PAA_ENTE_NON_VALIDO, f"Stato Ente non valido: {ente.state}", id=fault_id)
    return ente
