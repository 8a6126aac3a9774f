"""Rendicontazione: fetch the PSPs' reporting flows, reconcile them with receipts, serve them to the ente."""
