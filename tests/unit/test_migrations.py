"""Alembic's ``upgrade head`` on an empty database gives exactly the models' schema, on both backends."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import inspect

from storage.db import Database
from storage.migrate import schema_differences, upgrade
from storage.models import Base


@pytest.fixture
def empty_url(backend, request, tmp_path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    cluster = request.getfixturevalue("pg_cluster")
    name = "empty_" + uuid.uuid4().hex[:12]
    cluster.admin(f"CREATE DATABASE {name}")
    return cluster.url(name)


def test_upgrade_head_on_an_empty_database_matches_the_models(empty_url):
    upgrade(empty_url)
    database = Database(empty_url)
    try:
        assert schema_differences(database) == []
        tables = set(inspect(database.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
    finally:
        database.dispose()


def test_upgrade_is_idempotent(empty_url):
    upgrade(empty_url)
    upgrade(empty_url)
    database = Database(empty_url)
    try:
        assert schema_differences(database) == []
    finally:
        database.dispose()
