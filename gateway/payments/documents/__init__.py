"""Payload documents of the ente and pagoPA contracts: schema validation, parsers and builders."""

from .common import (ENTE_NS, PAY_NS, Allegato, DocumentInvalid, Dominio, IdentificativoUnivoco,
                     Istituto, MarcaBollo, Soggetto)
from .dovuti import (Dovuti, DovutiEntiSecondari, SingoloVersamentoDovuto, Versamento, bilancio_total,
                     parse_dovuti, parse_dovuti_enti_secondari, parse_versamento)
from .flusso import FlussoHeader, PagamentoFlusso, build_flusso, parse_flusso, write_flusso
from .pagati import RicevutaPagati, SingoloPagato, build_pagati, build_pagati_con_ricevuta
from .rpt import Rpt, SingoloVersamentoRpt, build_rpt, parse_rpt
from .rt import Rt, SingoloPagamentoRt, build_rt, parse_rt
from .schemas import KINDS, Kind, schema_path, validate, validate_element

__all__ = [
    "ENTE_NS", "PAY_NS", "KINDS", "Kind", "Allegato", "DocumentInvalid", "Dominio", "IdentificativoUnivoco",
    "Istituto", "MarcaBollo", "Soggetto", "Dovuti", "DovutiEntiSecondari", "SingoloVersamentoDovuto",
    "Versamento", "bilancio_total", "parse_dovuti", "parse_dovuti_enti_secondari", "parse_versamento",
    "FlussoHeader", "PagamentoFlusso", "build_flusso", "parse_flusso", "write_flusso", "RicevutaPagati",
    "SingoloPagato", "build_pagati", "build_pagati_con_ricevuta", "Rpt", "SingoloVersamentoRpt",
    "build_rpt", "parse_rpt", "Rt", "SingoloPagamentoRt", "build_rt", "parse_rt", "schema_path",
    "validate", "validate_element",
]
