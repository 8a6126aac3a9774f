"""The operator's CLI: database, enti and tipi dovuto, through the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy import select

from storage.db import Database
from storage.models import Ente


def run(database_url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, ENTE_GATEWAY_DATABASE_URL=database_url)
    result = subprocess.run([sys.executable, "-m", "gateway.cli", *args], env=env, capture_output=True, text=True,
                            timeout=60)
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


def test_operator_registers_an_ente_and_its_tipi_dovuto(database_url):
    run(database_url, "db", "upgrade")
    run(database_url, "ente", "add", "--cod-ipa", "C_X999", "--fiscal-code", "80012345678", "--name",
        "Comune di Prova", "--password", "s3cret-pass", "--segregation-code", "07")
    run(database_url, "tipo-dovuto", "add", "--cod-ipa", "C_X999", "--code", "TARI", "--description", "Tassa rifiuti",
        "--iban", "IT60 X054 2811 1010 0000 0123 456", "--taxonomy", "9/0101100IM/")
    enti = json.loads(run(database_url, "ente", "list", "--json").stdout)
    assert enti == [{"cod_ipa": "C_X999", "fiscal_code": "80012345678", "name": "Comune di Prova",
                     "state": "ESERCIZIO", "enabled": True, "aux_digit": "3", "segregation_code": "07",
                     "payment_model": "checkout"}]
    tipi = json.loads(run(database_url, "tipo-dovuto", "list", "--cod-ipa", "C_X999", "--json").stdout)
    assert tipi == [{"code": "TARI", "description": "Tassa rifiuti", "iban": "IT60X0542811101000000123456",
                     "taxonomy": "9/0101100IM/", "enabled": True}]
    run(database_url, "tipo-dovuto", "disable", "--cod-ipa", "C_X999", "--code", "TARI")
    assert json.loads(run(database_url, "tipo-dovuto", "list", "--cod-ipa", "C_X999", "--json").stdout)[0][
        "enabled"] is False
    run(database_url, "ente", "disable", "--cod-ipa", "C_X999")
    database = Database(database_url)
    try:
        with database.transaction() as session:
            ente = session.scalar(select(Ente).where(Ente.cod_ipa == "C_X999"))
            assert ente.enabled is False
            # The password is stored as a salted scrypt hash, never as given.
            assert "s3cret-pass" not in ente.password_hash and ente.password_hash.startswith("scrypt$")
    finally:
        database.dispose()


def test_bad_input_is_a_clear_error_not_a_traceback(database_url):
    run(database_url, "db", "upgrade")
    result = run(database_url, "ente", "add", "--cod-ipa", "C_1", "--fiscal-code", "123", "--name", "X",
                 "--password", "longenough", check=False)
    assert result.returncode != 0
    assert "fiscal code must be 11 digits" in result.stderr
    assert "Traceback" not in result.stderr
    result = run(database_url, "tipo-dovuto", "add", "--cod-ipa", "C_NONE", "--code", "T", "--description", "d",
                 "--iban", "IT60X0542811101000000123456", check=False)
    assert result.returncode != 0 and "no ente with cod IPA C_NONE" in result.stderr
    run(database_url, "ente", "add", "--cod-ipa", "C_1", "--fiscal-code", "80012345678", "--name", "X",
        "--password", "longenough")
    result = run(database_url, "tipo-dovuto", "add", "--cod-ipa", "C_1", "--code", "T", "--description", "d",
                 "--iban", "IT00X0000000000000000000000", check=False)
    assert result.returncode != 0 and "invalid IBAN" in result.stderr


def test_help_lists_every_command(database_url):
    out = run(database_url, "--help").stdout
    for command in ("db", "ente", "tipo-dovuto", "serve", "worker", "demo"):
        assert command in out
