"""Persistence: SQLAlchemy 2 models, engine/session handling and alembic migrations. Knows nothing of SOAP."""
