"""PagamentiTelematiciDovutiPagati: MyPay's 18 ``paaSIL*`` operations, translated to domain calls.

Which operations read the ente from the ``intestazionePPT`` header and which from the body follows
MyPay exactly (ente-services.md 1.1). No business rule lives here.
"""

from __future__ import annotations

from typing import Any

from spyne import ServiceBase

from gateway import faults
from gateway.flussi import sil as flussi
from gateway.payments import sil as payments
from gateway.soap import ente_models as m
from gateway.soap.common import operation

SERVICE = m.SERVICE_NAME


def _op(name: str):
    spec = m.OPERATIONS[name]
    return operation(spec.request, spec.response, service=SERVICE, fault_response=m.fault_response,
                     header=m.HEADER if spec.header else None)


def header_cod_ipa(ctx: Any) -> str:
    header = ctx.in_header
    if isinstance(header, (list, tuple)):
        header = header[0] if header else None
    cod_ipa = getattr(header, "codIpaEnte", None)
    if not cod_ipa:
        raise faults.Fault(faults.PAA_ENTE_NON_VALIDO, "Codice IPA Ente [null] non valido o password errata", id="")
    return cod_ipa.strip()


def _bytes(value: Any) -> bytes | None:
    """Spyne hands base64Binary over as a sequence of chunks."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return b"".join(value)


def _with_id(cod_ipa: str, call, *args: Any, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    except faults.Fault as fault:
        if fault.id is None:
            fault.id = cod_ipa
        raise


class PagamentiTelematiciDovutiPagati(ServiceBase):
    # --- "iniziato presso ente" ------------------------------------------------------------------
    @_op("paaSILInviaDovuti")
    def paaSILInviaDovuti(ctx, req):
        cod_ipa = header_cod_ipa(ctx)
        started = _with_id(cod_ipa, payments.invia_dovuti, ctx.udc, cod_ipa, req.password, _bytes(req.dovuti),
                           return_url=req.enteSILInviaRispostaPagamentoUrl, show_mypay=req.showMyPay)
        return m.paaSILInviaDovutiRisposta(esito="OK", idSession=started.id_session, redirect=1, url=started.url)

    @_op("paaSILInviaCarrelloDovuti")
    def paaSILInviaCarrelloDovuti(ctx, req):
        cod_ipa = header_cod_ipa(ctx)
        elements = [payments.CartElement(e.codIpaEnte, e.password, _bytes(e.dovuti))
                    for e in (req.listaDovuti.elementoListaDovuti if req.listaDovuti else None) or []]
        secondari = [_bytes(e.dovutiEntiSecondari) for e in
                     (req.listaDovutiEntiSecondari.elementoListaDovutiEntiSecondari
                      if req.listaDovutiEntiSecondari else None) or []]
        started = _with_id(cod_ipa, payments.invia_carrello, ctx.udc, cod_ipa, req.password, elements, secondari,
                           return_url=req.enteSILInviaRispostaPagamentoUrl)
        return m.paaSILInviaCarrelloDovutiRisposta(esito="OK", idSessionCarrello=started.id_session, redirect=1,
                                                   url=started.url)

    @_op("paaSILVerificaAvviso")
    def paaSILVerificaAvviso(ctx, req):
        cod_ipa = header_cod_ipa(ctx)
        started = _with_id(cod_ipa, payments.verifica_avviso, ctx.udc, cod_ipa, req.password,
                           req.identificativoUnivocoVersamento, return_url=req.enteSILInviaRispostaPagamentoUrl)
        return m.paaSILVerificaAvvisoRisposta(esito="OK", idSession=started.id_session, redirect=1, url=started.url)

    @_op("paaSILChiediPagati")
    def paaSILChiediPagati(ctx, req):
        pagati = _with_id(req.codIpaEnte, payments.chiedi_pagati, ctx.udc, req.codIpaEnte, req.password,
                          req.idSession)
        return m.paaSILChiediPagatiRisposta(pagati=payments.mypay_base64(pagati))

    @_op("paaSILChiediPagatiConRicevuta")
    def paaSILChiediPagatiConRicevuta(ctx, req):
        result = _with_id(req.codIpaEnte, payments.chiedi_pagati_con_ricevuta, ctx.udc, req.codIpaEnte,
                          req.password, id_session=req.idSession, iuv=req.identificativoUnivocoVersamento,
                          iud=req.identificativoUnivocoDovuto)
        return m.paaSILChiediPagatiConRicevutaRisposta(pagati=payments.mypay_base64(result.pagati),
                                                       tipoFirma=result.tipo_firma, rt=result.rt)

    @_op("paaSILChiediEsitoCarrelloDovuti")
    def paaSILChiediEsitoCarrelloDovuti(ctx, req):
        esiti = _with_id(req.codIpaEnte, payments.chiedi_esito_carrello, ctx.udc, req.codIpaEnte, req.password,
                         req.idSessionCarrello)
        carrelli = [m.rispostaCarrello(esito=e.esito, codIpaEnte=e.cod_ipa,
                                       codIdentificativoUnivocoCarrello=e.cart_id,
                                       pagati=payments.mypay_base64(e.pagati) if e.pagati else None, rt=e.rt)
                    for e in esiti]
        return m.paaSILChiediEsitoCarrelloDovutiRisposta(listaCarrelli=m.listaCarrelli(rispostaCarrello=carrelli))

    @_op("paaSILImportaDovuto")
    def paaSILImportaDovuto(ctx, req):
        cod_ipa = header_cod_ipa(ctx)
        secondari = [_bytes(e.dovutiEntiSecondari) for e in
                     (req.listaDovutiEntiSecondari.elementoListaDovutiEntiSecondari
                      if req.listaDovutiEntiSecondari else None) or []]
        result = _with_id(cod_ipa, payments.importa_dovuto, ctx.udc, cod_ipa, req.password, _bytes(req.dovuto),
                          flag_genera_iuv=bool(req.flagGeneraIuv), secondari=secondari)
        return m.paaSILImportaDovutoRisposta(esito="OK", identificativoUnivocoVersamento=result.iuv,
                                             urlFileAvviso=result.url_avviso, base64ZipAvviso=result.zip_avviso)

    @_op("paaSILRegistraPagamento")
    def paaSILRegistraPagamento(ctx, req):
        _with_id(req.codIpaEnte, payments.registra_pagamento, ctx.udc, req.codIpaEnte, req.password,
                 payments.PagamentoEsterno(
                     iuv=req.identificativoUnivocoVersamento, ccp=req.codiceContestoPagamento,
                     amount=req.singoloImportoPagato, date=req.dataEsitoSingoloPagamento,
                     index=req.indiceDatiSingoloPagamento, iur=req.identificativoUnivocoRiscossione,
                     attestante_type=req.tipoIstitutoAttestante, attestante_code=req.codiceIstitutiAttestante,
                     attestante_name=req.denominazioneAttestante))
        return m.paaSILRegistraPagamentoRisposta(esito="OK")

    @_op("paaSILChiediPosizioniAperte")
    def paaSILChiediPosizioniAperte(ctx, req):
        person = req.identificativoUnivocoPersonaFG
        positions = _with_id(req.codIpaEnte or "", payments.posizioni_aperte, ctx.udc, req.codIpaEnte, req.password,
                             getattr(person, "tipoIdentificativoUnivoco", None),
                             getattr(person, "codiceIdentificativoUnivoco", None))
        return m.paaSILChiediPosizioniAperteRisposta(paaSILPosizioniAperte=[
            m.paaSILPosizioniAperte(codIpaEnte=p.cod_ipa, deNomeEnte=p.ente_name, urlPagamento=p.url,
                                    dovuti=p.dovuti) for p in positions])

    @_op("paaSILChiediStoricoPagamenti")
    def paaSILChiediStoricoPagamenti(ctx, req):
        person = req.identificativoUnivocoPersonaFG
        date_to, history = _with_id(req.codIpaEnte or "", payments.storico_pagamenti, ctx.udc, req.codIpaEnte,
                                    req.password, getattr(person, "tipoIdentificativoUnivoco", None),
                                    getattr(person, "codiceIdentificativoUnivoco", None), req.dataFrom, req.dataTo)
        return m.paaSILChiediStoricoPagamentiRisposta(dateTo=date_to, paaSILStoricoPagamenti=[
            m.paaSILStoricoPagamenti(ctPagatiConRicevuta=h.pagati, urlDownloadRT=h.url_rt, rt=h.rt,
                                     codIpaEnte=h.cod_ipa, deNomeEnte=h.ente_name) for h in history])

    @_op("paaSILChiediAvvisiPendenti")
    def paaSILChiediAvvisiPendenti(ctx, req):
        pending = _with_id(req.codIpaEnte, payments.avvisi_pendenti, ctx.udc, req.codIpaEnte, req.password,
                           req.dateFrom, req.dateTo)
        return m.paaSILChiediAvvisiPendentiRisposta(paaSILAvvisoPendente=[
            m.paaSILAvvisoPendente(dtCreazioneCodIuv=p.created_on, dovuti=p.dovuti) for p in pending])

    # --- "per flussi" ------------------------------------------------------------------------------
    @_op("paaSILAutorizzaImportFlusso")
    def paaSILAutorizzaImportFlusso(ctx, req):
        cod_ipa = header_cod_ipa(ctx)
        grant = _with_id(cod_ipa, flussi.autorizza_import, ctx.udc, cod_ipa, req.password)
        return m.paaSILAutorizzaImportFlussoRisposta(uploadUrl=grant.upload_url,
                                                     authorizationToken=grant.authorization_token,
                                                     requestToken=grant.request_token, importPath=grant.import_path)

    @_op("paaSILChiediStatoImportFlusso")
    def paaSILChiediStatoImportFlusso(ctx, req):
        cod_ipa = header_cod_ipa(ctx)
        status = _with_id(cod_ipa, flussi.stato_import, ctx.udc, cod_ipa, req.password, req.requestToken,
                          scarti=bool(req.fileScarti), iuv=bool(req.fileIUV), avvisi=bool(req.fileAvvisi))
        return m.paaSILChiediStatoImportFlussoRisposta(stato=status.stato, urlFileScarti=status.url_scarti,
                                                       urlFileIUV=status.url_iuv, urlFileAvvisi=status.url_avvisi)

    @_op("paaSILPrenotaExportFlusso")
    def paaSILPrenotaExportFlusso(ctx, req):
        cod_ipa = header_cod_ipa(ctx)
        booking = _with_id(cod_ipa, flussi.prenota_export, ctx.udc, cod_ipa, req.password,
                           date_from=req.dateFrom, date_to=req.dateTo, tipo_dovuto=req.identificativoTipoDovuto,
                           version=req.versioneTracciato)
        return m.paaSILPrenotaExportFlussoRisposta(requestToken=booking.request_token)

    @_op("paaSILPrenotaExportFlussoIncrementaleConRicevuta")
    def paaSILPrenotaExportFlussoIncrementaleConRicevuta(ctx, req):
        cod_ipa = header_cod_ipa(ctx)
        booking = _with_id(cod_ipa, flussi.prenota_export_incrementale, ctx.udc, cod_ipa, req.password,
                           date_from=req.dateFrom, date_to=req.dateTo, tipo_dovuto=req.identificativoTipoDovuto,
                           with_receipts=bool(req.ricevuta), incremental=bool(req.incrementale),
                           version=req.versioneTracciato, mypivot_password=req.passwordMypivot)
        return m.paaSILPrenotaExportFlussoIncrementaleConRicevutaRisposta(requestToken=booking.request_token,
                                                                          dateTo=booking.date_to)

    @_op("paaSILPrenotaExportFlussoScaduti")
    def paaSILPrenotaExportFlussoScaduti(ctx, req):
        cod_ipa = header_cod_ipa(ctx)
        booking = _with_id(cod_ipa, flussi.prenota_export_scaduti, ctx.udc, cod_ipa, req.password,
                           due_date=req.dataScadenza, tipi_dovuto=req.tipiDovuto)
        return m.paaSILPrenotaExportFlussoScadutiRisposta(requestToken=booking.request_token)

    @_op("paaSILChiediStatoExportFlusso")
    def paaSILChiediStatoExportFlusso(ctx, req):
        cod_ipa = header_cod_ipa(ctx)
        status = _with_id(cod_ipa, flussi.stato_export, ctx.udc, cod_ipa, req.password, req.requestToken)
        return m.paaSILChiediStatoExportFlussoRisposta(stato=status.stato, downloadUrl=status.download_url or "")

    @_op("paaSILChiediStatoExportFlussoScaduti")
    def paaSILChiediStatoExportFlussoScaduti(ctx, req):
        cod_ipa = header_cod_ipa(ctx)
        status = _with_id(cod_ipa, flussi.stato_export_scaduti, ctx.udc, cod_ipa, req.password, req.requestToken)
        return m.paaSILChiediStatoExportFlussoScadutiRisposta(stato=status.stato, nomeFile=status.file_name or "",
                                                              downloadUrl=status.download_url or "",
                                                              pathFile=status.file_path or "")
