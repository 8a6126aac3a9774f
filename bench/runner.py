"""One benchmark run: databases, servers, load points, fixed-rate pass, profile, scaling; then the report.

Time is bounded: every point lasts ``duration`` seconds and the matrix is fixed by the options, so the
default run (2 backends x 3 worker counts x 5 operations, plus the echo baseline) ends in about 7 minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench import machine, report, servers, wrk
from bench.envelopes import Operation, Values, build_operations, fill
from bench.outcomes import distribution, post
from bench.postgres import Cluster, start_cluster
from bench.seed import Seeded, resize, seed

OPERATIONS = ("paVerifyPaymentNotice", "paGetPaymentV2", "paSendRTV2", "paaSILInviaDovuti", "paaSILChiediPagati")
LOOKUPS = ("paVerifyPaymentNotice", "paGetPaymentV2")  # the scaling table's operations
VARIANTS = {"spyne": "0", "fast": "1"}  # ENTE_GATEWAY_FAST_PATH value the gateway reads
RATE_FRACTION = 0.8
RATE_TOLERANCE = 0.07
SAMPLE_SIZE = 20
ECHO_VALUES = {"PAIRS": [("301000000000000199", "01000000000000199")],
               "ID_SESSION": ["3f2c0a1e-5b7d-4c1e-9a8b-16a0c5e3f7d2b"]}


@dataclass
class Options:
    backends: list[str] = field(default_factory=lambda: ["sqlite", "postgres"])
    workers: list[int] = field(default_factory=lambda: [1, 2, 4])
    duration: float = 5.0
    operations: list[str] = field(default_factory=lambda: list(OPERATIONS))
    db_sizes: list[int] = field(default_factory=lambda: [10_000])
    # The production default (fast path on); "spyne" measures every operation through Spyne alone.
    variants: list[str] = field(default_factory=lambda: ["fast"])
    rate_workers: int = 2
    threads: int = 1  # per worker, for the gateway and the echo alike (>1: gunicorn gthread workers)
    connections_per_worker: int = 4
    carts: int = 1_000
    profile: bool = True
    profile_seconds: float = 2.0
    warmup: float = 1.0
    quick: bool = False
    out: Path = report.ROOT / "docs" / "benchmarks.md"
    keep: bool = False

    @classmethod
    def quick_defaults(cls, **overrides: Any) -> "Options":
        base = cls(backends=["sqlite"], workers=[1], duration=2.0, db_sizes=[2_000], carts=100, profile_seconds=1.0,
                   warmup=0.0, quick=True)
        for key, value in overrides.items():
            if value is not None:
                setattr(base, key, value)
        return base


class Run:
    def __init__(self, options: Options, echo: Callable[[str], None] = print) -> None:
        self.o = options
        self.say = echo
        self.workdir = Path(tempfile.mkdtemp(prefix="ente-gateway-bench-"))
        self.cluster: Cluster | None = None
        options.operations = [name for name in OPERATIONS if name in options.operations]
        self.soap: dict[str, dict[str, Any]] = {name: {"points": [], "outcomes": {}, "p99_at_80pct": []}
                                                 for name in options.operations}
        self.echo_answers: dict[str, str] = {}
        self.profiles: dict[str, Any] = {}
        self.scaling: dict[str, Any] = {}
        self.operations: dict[str, Operation] = {}
        self.started = time.monotonic()
        self.load_at_start = os.getloadavg()

    # --- top level ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        ensure_wrk()
        try:
            if "postgres" in self.o.backends:
                self.say("starting a throwaway PostgreSQL cluster")
                self.cluster = start_cluster("ente-gateway-bench-pg-", shared_buffers="256MB")
            for backend in self.o.backends:
                self.backend(backend)
            self.echo_points()
            self.ratios()
            return self.write()
        finally:
            if self.cluster is not None:
                self.cluster.stop()
            if not self.o.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)
            else:
                self.say(f"kept {self.workdir}")

    def elapsed(self) -> str:
        return f"[{time.monotonic() - self.started:6.1f}s]"

    # --- one backend ---------------------------------------------------------------------------------
    def database_url(self, backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{self.workdir / 'bench.sqlite3'}"
        assert self.cluster is not None
        self.cluster.admin("CREATE DATABASE bench")
        return self.cluster.socket_url("bench")

    def backend(self, backend: str) -> None:
        from gateway.settings import load_settings
        from storage.db import Database
        from storage.migrate import upgrade

        url = self.database_url(backend)
        upgrade(url)
        database = Database(url)
        settings = load_settings()
        sizes = sorted(self.o.db_sizes)
        self.say(f"{self.elapsed()} {backend}: seeding {sizes[0]:,} payable dovuti and {self.o.carts:,} paid carrelli")
        seeded = seed(database, size=sizes[0], carts=self.o.carts, broker_id=settings.broker_id,
                      station_id=settings.station_id)
        if not self.operations:
            built = build_operations(seeded.identity)
            self.operations = {name: built[name] for name in self.o.operations}
        for workers in self.o.workers:
            for variant in self.o.variants:
                self.gateway_points(backend, url, seeded, workers, variant)
        if self.o.profile and backend == self.o.backends[-1]:
            self.profile(url, seeded)
        if len(sizes) > 1:
            for size in sizes:
                if size != seeded.size:
                    self.say(f"{self.elapsed()} {backend}: topping the table up to {size:,} dovuti")
                    resize(database, seeded, size)
                self.scaling_points(backend, url, seeded)
        database.dispose()

    def values(self, seeded: Seeded, name: str) -> dict[str, list]:
        pairs = seeded.receipts if name == "paSendRTV2" else seeded.lookup
        return {"PAIRS": pairs, "ID_SESSION": seeded.sessions}

    def python_values(self, seeded: Seeded, name: str) -> Values:
        pairs = self.values(seeded, name)["PAIRS"]
        return Values(pairs, seeded.sessions, tag=os.urandom(3).hex())

    def gateway_points(self, backend: str, url: str, seeded: Seeded, workers: int, variant: str) -> None:
        server = servers.start_gateway(url, self.workdir, workers, {"ENTE_GATEWAY_FAST_PATH": VARIANTS[variant]},
                                       threads=self.o.threads)
        try:
            for name, operation in self.operations.items():
                key = backend if variant == "spyne" else f"{backend} ({variant})"
                if key not in self.soap[name]["outcomes"]:
                    self.sample(server, name, operation, seeded, key)
                if self.o.warmup and name == next(iter(self.operations)):
                    self.load(server, operation, seeded, workers, duration=self.o.warmup)
                point = self.measure(server, operation, seeded, workers, backend=backend, variant=variant)
                self.soap[name]["points"].append(point)
                self.say(f"{self.elapsed()} {backend} {variant} W={workers} {name}: {point['rps']:.0f} req/s, "
                         f"p99 {point['latency_ms'].get('p99')} ms, {point['cpu_us_per_req']} µs CPU/req")
                if workers == self.rate_workers():
                    self.rate_point(server, operation, seeded, workers, point, backend, variant)
        finally:
            server.stop()

    def rate_workers(self) -> int:
        return self.o.rate_workers if self.o.rate_workers in self.o.workers else self.o.workers[0]

    def sample(self, server: servers.Server, name: str, operation: Operation, seeded: Seeded, key: str) -> None:
        values = self.python_values(seeded, name)
        answers = [post(server.url + operation.path, fill(operation, values()), operation.soap_action)
                   for _ in range(SAMPLE_SIZE)]
        self.soap[name]["outcomes"][key] = distribution(answers)
        self.soap[name]["sample_size"] = SAMPLE_SIZE
        if name not in self.echo_answers:
            status, body = answers[-1]
            self.echo_answers[name] = body.decode("utf-8")
            self.soap[name]["response_bytes"] = len(body)
            self.soap[name]["response_status"] = status
        self.say(f"{self.elapsed()} sample {name} on {key}: {self.soap[name]['outcomes'][key]}")

    # --- measuring -------------------------------------------------------------------------------------
    def script(self, operation: Operation, seeded: Seeded | None, delay_ms: float = 0.0) -> Path:
        # The echo answers anything: it gets values of the real shapes, so request sizes match.
        values = self.values(seeded, operation.name) if seeded else ECHO_VALUES
        path = self.workdir / f"{operation.name}-{os.urandom(4).hex()}.lua"
        path.write_text(wrk.lua_script(operation, values, delay_ms=delay_ms))
        return path

    def load(self, server: servers.Server, operation: Operation, seeded: Seeded | None, workers: int, *,
             duration: float, connections: int | None = None, delay_ms: float = 0.0) -> tuple[wrk.WrkResult, dict]:
        script = self.script(operation, seeded, delay_ms)
        pg_root = self.cluster.postmaster_pid() if self.cluster else None
        before, db_before = servers.tree_cpu(server.process.pid), servers.tree_cpu(pg_root)
        result = wrk.run(server.url + operation.path, script, duration=duration,
                         connections=connections or self.o.connections_per_worker * workers,
                         pin=bool(servers.pinning(workers)))
        after, db_after = servers.tree_cpu(server.process.pid), servers.tree_cpu(pg_root)
        requests = max(result.requests, 1)
        cpu = {"cpu_us_per_req": round(servers.cpu_delta(before, after) / requests * 1e6, 1),
               "db_cpu_us_per_req": (round(servers.cpu_delta(db_before, db_after) / requests * 1e6, 1)
                                     if server.kind == "gateway" and pg_root and "postgresql" in server.env.get(
                                         "ENTE_GATEWAY_DATABASE_URL", "") else None)}
        return result, cpu

    def measure(self, server: servers.Server, operation: Operation, seeded: Seeded | None, workers: int, *,
                backend: str | None, variant: str | None) -> dict[str, Any]:
        connections = self.o.connections_per_worker * workers
        result, cpu = self.load(server, operation, seeded, workers, duration=self.o.duration)
        return {"server": server.kind, "backend": backend, "variant": variant, "workers": workers,
                "connections": connections, **result.as_dict(), **cpu}

    def rate_point(self, server: servers.Server, operation: Operation, seeded: Seeded, workers: int,
                   peak: dict[str, Any], backend: str, variant: str) -> None:
        """Latency at ~80 % of the peak: one connection per worker, think time from wrk's Lua delay().

        wrk reconnects (sync workers close every connection) *before* its delay, and a sync worker that
        accepted an idle connection waits for it: with more connections than workers, think time would
        block other requests behind idle sockets. So connections = workers, and the delay sets the rate;
        if even without delay that is below 80 %, one more connection at a time until it is reached.
        """
        peak_rps = peak["rps"]
        if peak_rps <= 0:
            return
        target = RATE_FRACTION * peak_rps
        connections = workers
        delay_ms = max(0.0, (connections / target - workers / peak_rps) * 1000)
        result, _cpu = self.load(server, operation, seeded, workers, duration=self.o.duration,
                                 connections=connections, delay_ms=delay_ms)
        if delay_ms > 0 and result.rps > 0 and abs(result.rps / target - 1) > RATE_TOLERANCE:
            delay_ms = max(0.0, delay_ms + (connections / target - connections / result.rps) * 1000)
            result, _cpu = self.load(server, operation, seeded, workers, duration=self.o.duration,
                                     connections=connections, delay_ms=delay_ms)
        while delay_ms == 0 and result.rps < target * (1 - RATE_TOLERANCE) and connections < 2 * workers:
            connections += 1
            result, _cpu = self.load(server, operation, seeded, workers, duration=self.o.duration,
                                     connections=connections)
        self.soap[operation.name]["p99_at_80pct"].append({
            "backend": backend, "variant": variant, "workers": workers, "peak_rps": round(peak_rps, 1),
            "target_rps": round(target, 1), "achieved_rps": round(result.rps, 1),
            "fraction_of_peak": round(result.rps / peak_rps, 3), "p50_ms": result.latency_ms.get("p50"),
            "p99_ms": result.latency_ms.get("p99"), "connections": connections,
            "mean_delay_ms": round(delay_ms, 2), "non_2xx": result.non_2xx,
            "method": "closed loop, connections = workers, wrk 4 Lua delay() think time"})
        self.say(f"{self.elapsed()} {backend} {variant} W={workers} {operation.name} at "
                 f"{result.rps / peak_rps:.0%} of peak: p99 {result.latency_ms.get('p99')} ms")

    # --- echo baseline -------------------------------------------------------------------------------
    def echo_points(self) -> None:
        answers = self.workdir / "echo-responses.json"
        answers.write_text(json.dumps(self.echo_answers))
        for workers in self.o.workers:
            server = servers.start_echo(answers, self.workdir, workers, threads=self.o.threads)
            try:
                for name, operation in self.operations.items():
                    if self.o.warmup and name == next(iter(self.operations)):
                        self.load(server, operation, None, workers, duration=self.o.warmup)
                    point = self.measure(server, operation, None, workers, backend=None, variant=None)
                    self.soap[name]["points"].append(point)
                    self.say(f"{self.elapsed()} echo W={workers} {name}: {point['rps']:.0f} req/s, "
                             f"p99 {point['latency_ms'].get('p99')} ms, {point['cpu_us_per_req']} µs CPU/req")
            finally:
                server.stop()

    def ratios(self) -> None:
        for section in self.soap.values():
            echo = {p["workers"]: p["rps"] for p in section["points"] if p["server"] == "echo"}
            for point in section["points"]:
                base = echo.get(point["workers"])
                point["ratio_to_echo"] = round(point["rps"] / base, 3) if base else None

    # --- profile and scaling ------------------------------------------------------------------------
    def profile(self, url: str, seeded: Seeded) -> None:
        from bench.profile import build_app, profile_operation, quiet_logs
        from gateway.settings import load_settings

        settings = load_settings(database_url=url, public_url="http://127.0.0.1:8080", log_format="json",
                                 secret_key="bench-secret-key-0123456789abcdef", data_dir=self.workdir / "data")
        with quiet_logs(self.workdir / "profile.log"):
            app = build_app(settings)
            try:
                for name, operation in self.operations.items():
                    self.profiles[name] = profile_operation(app, operation, self.python_values(seeded, name),
                                                            seconds=self.o.profile_seconds)
                    self.profiles[name]["backend"] = self.o.backends[-1]
            finally:
                app.runtime.database.dispose()
        for name, figures in self.profiles.items():
            self.say(f"{self.elapsed()} profile {name}: {figures['us_per_request']} µs/req, {figures['outcome']}")

    def scaling_points(self, backend: str, url: str, seeded: Seeded) -> None:
        workers = self.rate_workers()
        server = servers.start_gateway(url, self.workdir, workers, {"ENTE_GATEWAY_FAST_PATH": "1"},
                                       threads=self.o.threads)
        try:
            for name in LOOKUPS:
                if name not in self.operations:
                    continue
                point = self.measure(server, self.operations[name], seeded, workers, backend=backend, variant="fast")
                self.scaling[f"{name} {backend} {seeded.size}"] = {
                    "operation": name, "backend": backend, "db_size": seeded.size, "workers": workers,
                    "rps": point["rps"], "latency_ms": point["latency_ms"], "non_2xx": point["non_2xx"]}
                self.say(f"{self.elapsed()} scaling {name} {backend} {seeded.size:,}: {point['rps']:.0f} req/s")
        finally:
            server.stop()

    # --- report ----------------------------------------------------------------------------------------
    def write(self) -> dict[str, Any]:
        pg_version = None
        if self.cluster is not None:
            try:
                pg_version = self.cluster.version()
            except Exception:  # noqa: BLE001 - the version is decoration, the figures are not
                pg_version = "unknown"
        info = machine.describe(pg_version, wrk.version())
        # Other processes on a 2-core host change every figure: say how busy it was.
        info["loadavg_start"] = [round(x, 2) for x in self.load_at_start]
        info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.o).items()}
        settings["db_size"] = min(self.o.db_sizes)
        program = "python -m bench" if sys.argv[0].endswith("__main__.py") else "ente-gateway"
        settings["command"] = " ".join([program] + sys.argv[1:])
        settings["wall_s"] = round(time.monotonic() - self.started, 1)
        sections: dict[str, Any] = {"soap": self.soap}
        if self.profiles:
            sections["profile"] = self.profiles
        if self.scaling:
            sections["scaling"] = self.scaling
        path = report.json_path_for(Path(self.o.out))
        data = report.replace_sections(sections, info, settings, path=path)
        self.say(f"{self.elapsed()} wrote {path} and {report.markdown_path_for(path)}")
        return data


def ensure_wrk() -> None:
    """Debian's wrk; installed on the spot when missing and running as root."""
    if wrk.available():
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, capture_output=True)
    if not wrk.available():
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")


def run(options: Options, echo: Callable[[str], None] = print) -> dict[str, Any]:
    return Run(options, echo).run()
