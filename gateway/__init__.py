"""ente-gateway: the intermediary between an ente's back-office (MyPay's SOAP contract) and pagoPA."""

__version__ = "0.1.0"
