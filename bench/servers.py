"""The two servers under test, each a gunicorn subprocess with the production settings, and their CPU time.

The gateway runs as production does (``ente-gateway serve --workers W``: sync workers, preload); the
echo baseline runs under the gunicorn CLI with the same worker class, preload, timeout and keep-alive.
With one worker the server is pinned to core 0 (``taskset -c 0``) and wrk to core 1.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.postgres import free_port

CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CORE = "0"
LOAD_CORE = "1"


@dataclass
class Server:
    kind: str  # gateway | echo
    url: str
    process: subprocess.Popen
    log_path: Path
    workers: int
    env: dict[str, str] = field(default_factory=dict)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def pinning(workers: int) -> list[str]:
    """taskset prefix for a server: one worker gets core 0 alone, wrk gets core 1; more workers share both."""
    if workers == 1 and shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", SERVER_CORE]
    return []


def _gateway_command() -> list[str]:
    script = Path(sys.executable).parent / "ente-gateway"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


def _wait_ready(server: Server, probe: str, timeout: float = 60) -> Server:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.kind} exited:\n{server.log_tail()}")
        try:
            if requests.get(server.url + probe, timeout=1).status_code < 500:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.kind} did not start:\n{server.log_tail()}")


def _threads(threads: int) -> list[str]:
    # More than one thread per worker: gunicorn's gthread workers (keep-alive, a request's database wait
    # overlapped with another's work); one: sync workers. Gateway and echo always get the same.
    return ["--threads", str(threads)] if threads > 1 else []


def start_gateway(database_url: str, workdir: Path, workers: int, extra_env: dict[str, str],
                  threads: int = 1) -> Server:
    port = free_port()
    metrics_dir = workdir / f"metrics-{port}"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({
        "ENTE_GATEWAY_DATABASE_URL": database_url,
        "ENTE_GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "ENTE_GATEWAY_NODE_URL": f"http://127.0.0.1:{port}/sim",  # never called by the measured operations
        "ENTE_GATEWAY_DATA_DIR": str(workdir / "data"),
        "ENTE_GATEWAY_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "ENTE_GATEWAY_LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    })
    env.update(extra_env)
    log_path = workdir / f"gateway-{port}.log"
    command = pinning(workers) + _gateway_command() + ["serve", "--host", "127.0.0.1", "--port", str(port),
                                                       "--workers", str(workers)] + _threads(threads)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    return _wait_ready(Server("gateway", f"http://127.0.0.1:{port}", process, log_path, workers, env), "/healthz")


def start_echo(responses_file: Path, workdir: Path, workers: int, threads: int = 1) -> Server:
    """The baseline under gunicorn's CLI with gateway/server.py's options (sync or gthread, preload, timeouts)."""
    port = free_port()
    env = dict(os.environ, BENCH_ECHO_RESPONSES=str(responses_file))
    log_path = workdir / f"echo-{port}.log"
    command = pinning(workers) + [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                                  "--workers", str(workers), "--worker-class", "sync", "--preload",
                                  "--timeout", "60", "--graceful-timeout", "20", "--keep-alive", "5",
                                  "--log-level", "warning"] + _threads(threads) + ["bench.echo_app:app"]
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    return _wait_ready(Server("echo", f"http://127.0.0.1:{port}", process, log_path, workers, env), "/")


# --- CPU accounting ----------------------------------------------------------------------------------

def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user+system CPU seconds) of a live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu(root: int | None) -> dict[int, float]:
    """CPU seconds of a process and all its descendants, by pid."""
    if root is None:
        return {}
    table: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                table[int(entry)] = stat
    result: dict[int, float] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        if pid in table:
            result[pid] = table[pid][1]
            frontier.extend(child for child, (parent, _) in table.items() if parent == pid)
    return result


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two snapshots (processes born in between count whole)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())
