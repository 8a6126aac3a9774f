"""Fault injection: killed workers, a restarted database, an unreachable node, several gateways on one database."""
