"""Run an iterator one step ahead in a thread: the next batch is parsed while the current one is written.

psycopg releases the GIL while it waits on the server, so the parsing thread gets the CPU exactly when the
writer would idle. The queue is bounded (memory stays a few batches whatever the file size); items and any
exception come out in the order the source produced them; closing the consumer stops the source.
"""

from __future__ import annotations

import gc
import queue
import sys
import threading
from contextlib import contextmanager
from typing import Iterator, TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(source: Iterator[T], depth: int = 1, *, name: str = "read-ahead") -> Iterator[T]:
    """Yield what ``source`` yields, produced by a worker thread at most ``depth`` items ahead."""
    slots: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, raised there
            put(_Failure(error))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(timeout=30)


@contextmanager
def gc_paused() -> Iterator[None]:
    """The import's CPU settings meanwhile: no automatic cyclic garbage collection (with a few batches of
    row objects alive its full passes cost a quarter of the CPU; rows make no cycles, the importer
    collects now and then), and a short GIL switch interval, so the writing thread gets the GIL back
    soon after the server answers instead of waiting up to 5 ms for the parsing thread."""
    was_enabled = gc.isenabled()
    gc.disable()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        if was_enabled:
            gc.enable()
