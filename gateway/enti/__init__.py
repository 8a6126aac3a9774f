"""Enti and their tipi dovuto: registration, credentials, look-ups."""
