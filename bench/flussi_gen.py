"""Generator of realistic import flows (<codIpa>-<IUF>-<version>.zip) for benchmarks and tests.

    python -m bench.flussi_gen --cod-ipa C_X999 --iuf BENCH1 --rows 100000 --version 1_3 --bad 0.02 --out /tmp

Rows have valid codici fiscali / partite IVA, addresses, amounts and due dates; a share of them carries one
of the typical mistakes (``BAD_KINDS``); modify/annul rows can point at IUDs loaded by an earlier flow.
"""

from __future__ import annotations

import argparse
import io
import random
import zipfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Sequence

from stdnum import luhn
from stdnum.it import codicefiscale

from gateway.flussi.tracciati import TRACCIATI

BAD_KINDS = ("cod_fisc", "iud_missing", "amount", "tipo", "azione", "date", "email", "dsr", "columns", "duplicate")
_CONSONANTS = "BCDFGHLMNPRSTVZ"
_MONTHS = "ABCDEHLMPRST"
_NAMES = ("Mario Rossi", "Laura Bianchi", "Luca Neri", "Giulia Verdi", "Paolo Ferrari", "Anna Esposito",
          "Marco Romano", "Sara Colombo", "Davide Ricci", "Elena Marino")
_STREETS = ("Via Roma", "Via Garibaldi", "Piazza Duomo", "Corso Italia", "Via Mazzini", "Viale Venezia")
_CITIES = (("Venezia", "VE", "30100"), ("Padova", "PD", "35100"), ("Verona", "VR", "37100"),
           ("Treviso", "TV", "31100"), ("Vicenza", "VI", "36100"), ("Milano", "MI", "20121"))


@dataclass
class GeneratedFlow:
    path: Path
    good_iuds: list[str]
    bad_rows: dict[int, str]  # row number -> kind of mistake


def random_cf(rng: random.Random) -> str:
    body = ("".join(rng.choice(_CONSONANTS) for _ in range(6)) + f"{rng.randint(40, 99)}" + rng.choice(_MONTHS)
            + f"{rng.randint(1, 28) + rng.choice((0, 40)):02d}" + rng.choice("ABCDEFGHL") + f"{rng.randint(100, 999)}")
    return body + codicefiscale.calc_check_digit(body)


def random_piva(rng: random.Random) -> str:
    body = f"{rng.randint(0, 9_999_999):07d}" + f"{rng.randint(1, 100):03d}"
    return body + luhn.calc_check_digit(body)


def _row(rng: random.Random, version: str, iud: str, tipo: str, azione: str, genera_iuv: bool) -> list[str]:
    name = rng.choice(_NAMES)
    city, province, cap = rng.choice(_CITIES)
    person = rng.random() < 0.85
    amount = f"{rng.randint(100, 250_000) / 100:.2f}"
    due = (date(2026, 1, 1) + timedelta(days=rng.randint(0, 700))).isoformat()
    fields = [iud, "", "F" if person else "G", random_cf(rng) if person else random_piva(rng),
              name if person else name.split()[1] + " Srl", f"{rng.choice(_STREETS)}", str(rng.randint(1, 200)), cap,
              city, province, "IT", f"{name.split()[0].lower()}.{rng.randint(1, 9999)}@example.org", due, amount, "",
              tipo, "", f"{tipo} {due[:4]} rata {rng.randint(1, 4)}; utenza {rng.randint(1000, 99999)}",
              "9/0101100IM/"]
    if version >= "1_2":
        fields.append("")
    if version >= "1_3":
        fields.append("true" if genera_iuv else "false")
    if version == "1_4":
        fields += [""] * 13
    fields.append(azione)
    return fields


def _spoil(fields: list[str], kind: str, width: int) -> list[str]:
    if kind == "cod_fisc":
        fields[2], fields[3] = "F", "RSSMRA80A01H501X"
    elif kind == "iud_missing":
        fields[0] = ""
    elif kind == "amount":
        fields[13] = "12,50"
    elif kind == "tipo":
        fields[15] = "NON_ESISTE"
    elif kind == "azione":
        fields[width - 1] = "X"
    elif kind == "date":
        fields[12] = "2025-02-30"
    elif kind == "email":
        fields[11] = "not an email"
    elif kind == "dsr":
        fields[18] = "bad"
    elif kind == "columns":
        fields = fields + ["extra"]
    return fields


def _csv_field(value: str) -> str:
    return '"' + value.replace('"', '\\"') + '"' if ";" in value or '"' in value else value


def generate(out_dir: Path, cod_ipa: str, iuf: str, rows: int, *, version: str = "1_3",
             tipi: Sequence[str] = ("TARI", "MENSA"), bad: float = 0.0, genera_iuv: float = 0.1,
             modify: Sequence[str] = (), annul: Sequence[str] = (), iud_prefix: str | None = None,
             seed: int = 1) -> GeneratedFlow:
    """Write the flow zip; ``modify``/``annul`` IUDs come first (azione M / A), then ``rows`` new positions."""
    rng = random.Random(seed)
    tracciato = TRACCIATI[version]
    name = f"{cod_ipa}-{iuf}-{version}"
    path = Path(out_dir) / f"{name}.zip"
    prefix = iud_prefix or f"{iuf}-"
    good: list[str] = []
    bad_rows: dict[int, str] = {}
    number = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive, \
            archive.open(f"{name}.csv", "w", force_zip64=True) as binary:
        out = io.TextIOWrapper(binary, encoding="utf-8", newline="")
        out.write(tracciato.header + "\n")
        plan = [(iud, "M") for iud in modify] + [(iud, "A") for iud in annul] + \
               [(f"{prefix}{n:08d}", "I") for n in range(1, rows + 1)]
        for iud, azione in plan:
            number += 1
            fields = _row(rng, version, iud, rng.choice(list(tipi)), azione,
                          version >= "1_3" and rng.random() < genera_iuv)
            kind = rng.choice(BAD_KINDS) if azione == "I" and bad and rng.random() < bad else None
            if kind == "duplicate" and good:
                fields[0] = rng.choice(good)
            elif kind == "duplicate":
                kind = None
            elif kind:
                fields = _spoil(fields, kind, tracciato.width)
            if kind:
                bad_rows[number] = kind
            else:
                good.append(iud)
            out.write(";".join(_csv_field(f) for f in fields) + "\n")
        out.flush()
        out.detach()
    return GeneratedFlow(path, good, bad_rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cod-ipa", required=True)
    parser.add_argument("--iuf", default="BENCH")
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--version", default="1_3", choices=sorted(TRACCIATI))
    parser.add_argument("--tipi", default="TARI,MENSA")
    parser.add_argument("--bad", type=float, default=0.0, help="share of rows with a mistake (0..1)")
    parser.add_argument("--genera-iuv", type=float, default=0.1, help="share of rows with flagGeneraIuv=true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    flow = generate(args.out, args.cod_ipa, args.iuf, args.rows, version=args.version, tipi=args.tipi.split(","),
                    bad=args.bad, genera_iuv=args.genera_iuv, seed=args.seed)
    print(f"{flow.path} rows={args.rows} bad={len(flow.bad_rows)}")


if __name__ == "__main__":
    main()
