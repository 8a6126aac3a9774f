"""Embedded pagoPA simulator: node (modello 3 and legacy), Checkout, payment page, PSPs, control API.

It knows the gateway only through HTTP URLs and keeps its own state in its own database.
"""
