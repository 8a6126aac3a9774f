"""Hostile input: malformed envelopes, wrong types, injection strings, another ente's identifiers."""
