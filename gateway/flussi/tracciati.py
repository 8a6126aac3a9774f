"""The CSV tracciati of MyPay's flussi: import columns by version 1_0..1_4, MyPay's line splitting, export columns.

flussi-formats §1.3-1.4 (import) and §2.4 (export). Pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

IMPORT_VERSIONS = ("1_0", "1_1", "1_2", "1_3", "1_4")
EXPORT_VERSIONS = ("1.0", "1.1", "1.2", "1.3")

# (canonical name, max length, mandatory at parse time)
_BASE = [
    ("IUD", 35, True), ("codIuv", 35, False), ("tipoIdentificativoUnivoco", 1, True),
    ("codiceIdentificativoUnivoco", 35, True), ("anagraficaPagatore", 70, True),
    ("indirizzoPagatore", 70, False), ("civicoPagatore", 16, False), ("capPagatore", 16, False),
    ("localitaPagatore", 35, False), ("provinciaPagatore", 2, False), ("nazionePagatore", 2, False),
    ("emailPagatore", 256, False), ("dataScadenzaPagamento", 10, False), ("importoDovuto", 15, True),
    ("commissioneCaricoPa", 15, False), ("tipoDovuto", 64, True), ("tipoVersamento", 32, False),
    ("causaleVersamento", 1024, True), ("datiSpecificiRiscossione", 140, True),
]
_BILANCIO = [("bilancio", 4096, False)]
_FLAG_IUV = [("flagGeneraIuv", 5, False)]
_MB = [
    ("flagMultiBeneficiario", 5, False), ("codiceFiscaleEnteSecondario", 11, False),
    ("denominazioneEnteSecondario", 70, False), ("ibanAccreditoEnteSecondario", 35, False),
    ("indirizzoEnteSecondario", 70, False), ("civicoEnteSecondario", 16, False),
    ("capEnteSecondario", 16, False), ("localitaEnteSecondario", 35, False),
    ("provinciaEnteSecondario", 35, False), ("nazioneEnteSecondario", 2, False),
    ("datiSpecificiRiscossioneEnteSecondario", 140, False), ("causaleVersamentoEnteSecondario", 1024, False),
    ("importoVersamentoEnteSecondario", 15, False),
]
_AZIONE = [("azione", 1, True)]


@dataclass(frozen=True)
class Column:
    name: str
    index: int
    max_length: int
    mandatory: bool

    @property
    def label(self) -> str:
        """MyPay's upper-snake field label in phase-A messages ("IMPORTO_DOVUTO TROPPO GRANDE")."""
        return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", self.name).upper()


@dataclass(frozen=True)
class ImportTracciato:
    version: str
    columns: tuple[Column, ...]

    @property
    def width(self) -> int:
        return len(self.columns)

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def header(self) -> str:
        return ";".join(self.names)

    def index(self, name: str) -> int | None:
        for column in self.columns:
            if column.name == name:
                return column.index
        return None


def _build(version: str) -> ImportTracciato:
    spec = list(_BASE)
    if version == "1_0":
        spec[17] = ("causaleVersamento", 140, True)
    if version in ("1_0", "1_1"):
        spec[12] = ("dataScadenzaPagamento", 10, True)
    if version >= "1_2":
        spec += _BILANCIO
    if version >= "1_3":
        spec += _FLAG_IUV
    if version == "1_4":
        spec += _MB
    spec += _AZIONE
    return ImportTracciato(version, tuple(Column(n, i, m, req) for i, (n, m, req) in enumerate(spec)))


TRACCIATI: dict[str, ImportTracciato] = {v: _build(v) for v in IMPORT_VERSIONS}


def split_line(line: str) -> list[str]:
    """MyPay's row split: `;` outside `"`, fields trimmed, `"…"` unwrapped, `\\"` turned into `"`."""
    pieces = line.split(";")
    if '"' not in line:
        return list(map(str.strip, pieces))  # the common case, stripped in C
    fields: list[str] = []
    pending: str | None = None
    for piece in pieces:
        if '"' not in piece:
            # No quote in this piece: the parity of the quotes so far does not change (this runs per field).
            if pending is None:
                fields.append(piece.strip())
            else:
                pending = pending + ";" + piece
            continue
        current = piece if pending is None else pending + ";" + piece
        # An odd number of unescaped quotes so far: the `;` we split on was inside a quoted field.
        if (current.count('"') - current.count('\\"')) % 2:
            pending = current
        else:
            fields.append(_unquote(current.strip()))
            pending = None
    if pending is not None:
        fields.append(_unquote(pending.strip()))
    return fields


def _unquote(field: str) -> str:
    if len(field) >= 2 and field[0] == '"' and field[-1] == '"':
        field = field[1:-1]
    return field.replace('\\"', '"')


def quote_field(value: str) -> str:
    """A field for the IUV file: quoted (with MyPay's backslash escape) only when it holds `;` or `"`."""
    if ";" in value or '"' in value:
        return '"' + value.replace('"', '\\"') + '"'
    return value


# --- export (flussi-formats §2.4) -----------------------------------------------------------------------
EXPORT_BASE_COLUMNS = (
    "iuf", "numRigaFlusso", "codIud", "codIuv", "versioneOggetto", "identificativoDominio",
    "identificativoStazioneRichiedente", "identificativoMessaggioRicevuta", "dataOraMessaggioRicevuta",
    "riferimentoMessaggioRichiesta", "riferimentoDataRichiesta", "tipoIdentificativoUnivoco",
    "codiceIdentificativoUnivoco", "denominazioneAttestante", "codiceUnitOperAttestante",
    "denomUnitOperAttestante", "indirizzoAttestante", "civicoAttestante", "capAttestante", "localitaAttestante",
    "provinciaAttestante", "nazioneAttestante", "enteBenefTipoIdentificativoUnivoco",
    "enteBenefCodiceIdentificativoUnivoco", "denominazioneBeneficiario", "codiceUnitOperBeneficiario",
    "denomUnitOperBeneficiario", "indirizzoBeneficiario", "civicoBeneficiario", "capBeneficiario",
    "localitaBeneficiario", "provinciaBeneficiario", "nazioneBeneficiario", "soggVersTipoIdentificativoUnivoco",
    "soggVersCodiceIdentificativoUnivoco", "anagraficaVersante", "indirizzoVersante", "civicoVersante",
    "capVersante", "localitaVersante", "provinciaVersante", "nazioneVersante", "emailVersante",
    "soggPagTipoIdentificativoUnivoco", "soggPagCodiceIdentificativoUnivoco", "anagraficaPagatore",
    "indirizzoPagatore", "civicoPagatore", "capPagatore", "localitaPagatore", "provinciaPagatore",
    "nazionePagatore", "emailPagatore", "codiceEsitoPagamento", "importoTotalePagato",
    "identificativoUnivocoVersamento", "codiceContestoPagamento", "singoloImportoPagato",
    "esitoSingoloPagamento", "dataEsitoSingoloPagamento", "identificativoUnivocoRiscoss",
    "causaleVersamento", "datiSpecificiRiscossione", "tipoDovuto",
)
EXPORT_RECEIPT_COLUMNS = (
    "tipoFirma", "rt", "indiceDatiSingoloPagamento", "numRtDatiPagDatiSingPagCommissioniApplicatePsp",
    "codRtDatiPagDatiSingPagAllegatoRicevutaTipo", "blbRtDatiPagDatiSingPagAllegatoRicevutaTest",
)
EXPORT_VERSION_COLUMNS = {
    "1.0": (), "1.1": (), "1.2": ("bilancio",),
    "1.3": ("bilancio", "cod_fiscale_pa1", "de_nome_pa1", "cod_tassonomico_dovuto_pa1"),
}

# Expired-dovuti export (paaSILPrenotaExportFlussoScaduti): MyPay's layout is not documented; we give the
# import columns of 1_2 without azione, plus the state, so the file can be re-imported after editing.
SCADUTI_COLUMNS = TRACCIATI["1_2"].names[:-1] + ("stato",)


def export_columns(version: str, with_receipts: bool) -> tuple[str, ...]:
    return EXPORT_BASE_COLUMNS + (EXPORT_RECEIPT_COLUMNS if with_receipts else ()) + EXPORT_VERSION_COLUMNS[version]


_FORMULA_START = frozenset("=+-@\t\r")


def neutralise(text: str) -> str:
    """Spreadsheet formula injection: a text starting with = + - @ TAB CR gets a leading apostrophe."""
    if text and text[0] in _FORMULA_START:
        return "'" + text
    return text
