"""PPT_* faults the simulated node raises, with the fixed faultString of each code (§4.1).

Shared by every simulated interface: raise ``NodeFault(code, description)``; the SOAP layers turn it
into a faultBean. Relayed counterpart errors carry the counterpart's id and the ``original*`` fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulators.config import NODE_ID

FAULT_STRINGS: dict[str, str] = {
    "PPT_SINTASSI_EXTRAXSD": "Errore di sintassi extra XSD.",
    "PPT_SINTASSI_XSD": "Errore di sintassi XSD.",
    "PPT_SEMANTICA": "Errore semantico.",
    "PPT_AUTENTICAZIONE": "Errore di autenticazione.",
    "PPT_AUTORIZZAZIONE": "Il richiedente non è abilitato ad operare sull’entità indicata.",
    "PPT_DOMINIO_SCONOSCIUTO": "Identificativo dominio sconosciuto.",
    "PPT_DOMINIO_DISABILITATO": "Dominio disabilitato.",
    "PPT_INTERMEDIARIO_PA_SCONOSCIUTO": "Identificativo intermediario PA sconosciuto.",
    "PPT_STAZIONE_INT_PA_SCONOSCIUTA": "Identificativo stazione intermediario PA sconosciuto.",
    "PPT_PSP_SCONOSCIUTO": "Identificativo PSP sconosciuto.",
    "PPT_PSP_DISABILITATO": "PSP disabilitato.",
    "PPT_INTERMEDIARIO_PSP_SCONOSCIUTO": "Identificativo intermediario PSP sconosciuto.",
    "PPT_CANALE_SCONOSCIUTO": "Identificativo canale sconosciuto.",
    "PPT_CANALE_IRRAGGIUNGIBILE": "Errore di connessione verso il canale.",
    "PPT_CANALE_TIMEOUT": "Timeout in risposta dal canale.",
    "PPT_CANALE_ERRORE": "Errore restituito dal PSP.",
    "PPT_PAGAMENTO_SCONOSCIUTO": "Pagamento sconosciuto.",
    "PPT_PAGAMENTO_DUPLICATO": "Pagamento duplicato.",
    "PPT_PAGAMENTO_IN_CORSO": "Pagamento in attesa risulta in corso al sistema pagoPA.",
    "PPT_TOKEN_SCONOSCIUTO": "paymentToken sconosciuto.",
    "PPT_TOKEN_SCADUTO": "paymentToken scaduto.",
    "PPT_ESITO_GIA_ACQUISITO": "Esito già acquisito.",
    "PPT_ERRORE_EMESSO_DA_PAA": "Errore restituito dall’Ente Creditore.",
    "PPT_STAZIONE_INT_PA_TIMEOUT": "Timeout risposta dalla stazione.",
    "PPT_STAZIONE_INT_PA_IRRAGGIUNGIBILE": "Errore di connessione verso la stazione.",
    "PPT_STAZIONE_INT_PA_ERRORE_RESPONSE": "Errore di risposta dalla stazione.",
    "PPT_RPT_DUPLICATA": "RPT duplicata.",
    "PPT_ID_CARRELLO_DUPLICATO": "Identificativo Carrello RPT duplicato",
    "PPT_RPT_SCONOSCIUTA": "RPT sconosciuta.",
    "PPT_RT_SCONOSCIUTA": "RT sconosciuta.",
    "PPT_RT_NONDISPONIBILE": "RT non ancora pronta.",
    "PPT_ID_FLUSSO_SCONOSCIUTO": "Identificativo flusso sconosciuto.",
    "PPT_SUPERAMENTOSOGLIA": "Superamento soglia.",
    "PPT_SYSTEM_ERROR": "Errore generico.",
}


@dataclass
class NodeFault(Exception):
    """A fault the node answers; ``fault_id`` is the node unless the error was relayed from the EC."""

    code: str
    description: str = ""
    fault_id: str = NODE_ID
    original_code: str | None = None
    original_string: str | None = None
    original_description: str | None = None
    serial: int | None = None

    @property
    def string(self) -> str:
        return FAULT_STRINGS.get(self.code, self.code)

    def __str__(self) -> str:
        return f"{self.code}: {self.description}"

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"faultCode": self.code, "faultString": self.string, "id": self.fault_id,
                                   "description": self.description}
        if self.original_code:
            data.update(originalFaultCode=self.original_code, originalFaultString=self.original_string,
                        originalDescription=self.original_description)
        return data
