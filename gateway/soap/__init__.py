"""Thin SOAP layer: one module per contract; it translates requests to domain calls and back, nothing more."""
