"""Run alembic migrations programmatically (``ente-gateway db upgrade``) and compare schema to models."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from storage.db import Database, normalise_url
from storage.models import Base

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def schema_differences(database: Database) -> list:
    """What alembic autogenerate would still change: empty when migrations and models agree."""
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "render_as_batch": True})
        return compare_metadata(context, Base.metadata)


def revision(url: str, message: str) -> None:
    """Developer helper: autogenerate a new migration from the models (``ente-gateway db revision``)."""
    command.revision(alembic_config(url), message=message, autogenerate=True)
