"""The "iniziato presso ente" operations as the SIL sees them: one function per paaSIL* operation.

Each function authenticates the ente, runs in its own transaction, and raises ``Fault`` for business
errors; the SOAP layer only translates. Positions and sessions live in two modules.
"""

from gateway.payments.results import (AvvisoPendente, CartElement, EsitoCarrello, ImportaDovutoResult,  # noqa: F401
                                      PagamentoEsterno, PagatiConRicevuta, PosizioneAperta, SessionStarted,
                                      StoricoPagamento, mypay_base64)
from gateway.payments.sil_positions import (avvisi_pendenti, importa_dovuto, posizioni_aperte,  # noqa: F401
                                            registra_pagamento)
from gateway.payments.sil_sessions import (chiedi_esito_carrello, chiedi_pagati, chiedi_pagati_con_ricevuta,  # noqa: F401
                                           invia_carrello, invia_dovuti, storico_pagamenti, verifica_avviso)
