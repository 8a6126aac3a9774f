"""PaPerNodo: the legacy node's delivery of RTs (paaInviaRT), translated to domain calls."""

from __future__ import annotations

from typing import Any

from spyne import ServiceBase

from gateway import faults
from gateway.payments import node_side as domain
from gateway.soap import pa_per_nodo_models as m
from gateway.soap.common import operation

SERVICE = "PaPerNodo"


def _op(name: str):
    request, response, header = m.OPERATIONS[name]
    return operation(request, response, service=SERVICE, fault_response=m.fault_response,
                     header=(header,) if header is not None else None)


def _header(ctx: Any) -> domain.RtHeader:
    header = ctx.in_header
    if isinstance(header, (list, tuple)):
        header = header[0] if header else None
    return domain.RtHeader(broker=getattr(header, "identificativoIntermediarioPA", None),
                           station=getattr(header, "identificativoStazioneIntermediarioPA", None),
                           dominio=getattr(header, "identificativoDominio", None),
                           iuv=getattr(header, "identificativoUnivocoVersamento", None),
                           ccp=getattr(header, "codiceContestoPagamento", None))


class PagamentiTelematiciRT(ServiceBase):
    @_op("paaInviaRT")
    def paaInviaRT(ctx, req):
        header = _header(ctx)
        rt = req.rt
        try:
            domain.invia_rt(ctx.udc, header, req.tipoFirma,
                            b"".join(rt) if rt is not None and not isinstance(rt, bytes) else rt)
        except faults.Fault as fault:
            fault.id = fault.id or header.dominio or ""
            raise
        return m.esito(m.paaInviaRTRisposta, m.ESITO_OK)

    @_op("paaInviaEsitoStorno")
    def paaInviaEsitoStorno(ctx, req):
        # Storno (reversal) is not part of the flows this gateway runs: say so with the contract's code.
        raise faults.system_error("paaInviaEsitoStorno non gestito da questo gateway", req.identificativoDominio)

    @_op("paaInviaRichiestaRevoca")
    def paaInviaRichiestaRevoca(ctx, req):
        raise faults.system_error("paaInviaRichiestaRevoca non gestito da questo gateway", req.identificativoDominio)
