"""Benchmark harness: gunicorn + wrk against the gateway and a bare lxml echo baseline, on SQLite and PostgreSQL.

Run ``python -m bench`` (or ``ente-gateway bench``); results land in docs/benchmarks.md and docs/benchmarks.json.
"""
