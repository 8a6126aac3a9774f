"""PagamentiTelematiciFlussiSPC (MyPivot): the rendicontazione flows of an ente, translated to domain calls."""

from __future__ import annotations

from spyne import ServiceBase

from gateway.rendicontazione import sil
from gateway.soap import flussi_spc_models as m
from gateway.soap.common import operation

SERVICE = m.SERVICE_NAME


def _op(name: str):
    spec = m.OPERATIONS[name]
    return operation(spec.request, spec.response, service=SERVICE, fault_response=m.fault_response)


class PagamentiTelematiciFlussiSPC(ServiceBase):
    @_op("paaSILChiediElencoFlussiSPC")
    def paaSILChiediElencoFlussiSPC(ctx, req):
        flows = sil.elenco_flussi(ctx.udc, req.codIpaEnte, req.password, psp_id=req.identificativoPsp,
                                  kind=req.tipoFlusso, date_from=req.dateFrom, date_to=req.dateTo)
        return m.paaSILChiediElencoFlussiSPCRisposta(elencoFlussiSPC=m.tipoElencoFlussiSPC(
            totRestituiti=len(flows),
            idSPC=[m.tipoIdSPC(identificativoFlusso=f.flow_id, dataOraFlusso=f.flow_datetime) for f in flows]))

    @_op("paaSILChiediFlussoSPC")
    def paaSILChiediFlussoSPC(ctx, req):
        result = sil.flusso(ctx.udc, req.codIpaEnte, req.password, psp_id=req.identificativoPsp,
                            kind=req.tipoFlusso, flow_id=req.identificativoFlusso, flow_datetime=req.dataOraFlusso)
        return m.paaSILChiediFlussoSPCRisposta(stato=result.stato, downloadUrl=result.download_url or "")
