"""``python -m bench``: same command as ``ente-gateway bench``."""

from bench.commands import bench

if __name__ == "__main__":  # pragma: no cover
    bench(prog_name="python -m bench")
