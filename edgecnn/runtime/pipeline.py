"""Decode ahead: load items on a small thread pool while the caller runs the model, in input order
(``ordered_map``), or read a sequential source such as a video decoder on one thread (``Ahead``:
every frame of a file in order, or only the newest frame of a live stream).

Pillow's decoders and resamplers and onnxruntime's ``run`` release the GIL, so on a 2-core device one
thread decodes the next images while the model runs on the other core. At most ``depth`` items are
in flight (decoded and not yet taken), so memory stays bounded whatever the folder's size. A load
that raises one of ``expected`` (a bad file) becomes that item's result; anything else is raised in
the caller's thread when its turn comes. NumPy + the standard library only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future

T = TypeVar("T")
R = TypeVar("R")


def decode_workers(cores: int | None = None) -> int:
    """Decode threads for a folder run: one per core beyond the first, which the model keeps
    (on 2 cores: decode on one while the model runs on the other; measured in
    ``benchmarks/folder_bench.py``)."""
    if cores is None:
        from edgecnn.threads import allowed_cpus

        cores = len(allowed_cpus())
    return max(1, cores - 1)


def ordered_map(load: Callable[[T], R], items: Iterable[T], workers: int, depth: int,
                expected: tuple[type[BaseException], ...] = ()) -> Iterator[tuple[T, R | BaseException]]:
    """``(item, load(item))`` in input order, ``load`` running on ``workers`` threads with at most
    ``depth`` items submitted and not yet yielded; an ``expected`` exception is yielded in place of
    the result. ``workers == 0`` runs ``load`` inline (no thread). Closing the iterator early cancels
    what has not started and waits for what has."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if workers < 1:
        for item in items:
            yield item, _call(load, item, expected)
        return
    from concurrent.futures import ThreadPoolExecutor  # not imported for inline runs (cold start)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edgecnn-decode")
    pending: deque[tuple[T, Future]] = deque()
    source = iter(items)
    try:
        for item in source:
            pending.append((item, pool.submit(_call, load, item, expected)))
            if len(pending) >= depth:
                first, fut = pending.popleft()
                yield first, fut.result()
        while pending:
            first, fut = pending.popleft()
            yield first, fut.result()
    finally:
        for _, fut in pending:
            fut.cancel()
        pool.shutdown(wait=True)


def _call(load: Callable[[T], R], item: T, expected: tuple[type[BaseException], ...]) -> R | BaseException:
    try:
        return load(item)
    except expected as e:
        return e


class Ahead:
    """Items of a sequential producer (a video decoder) read on one thread while the caller works on
    the previous ones. ``newest=False`` (a file): every item, in order, at most ``depth`` waiting; the
    producer blocks when they are not taken. ``newest=True`` (a live source): one slot, a new item
    replaces one not yet taken (counted in ``dropped``), so the caller always gets the most recent item
    and the latency stays one item whatever the caller's speed. An exception in the producer is raised
    in the caller after the items before it; closing the iterator (or ``close``) stops the producer."""

    _END = object()

    def __init__(self, items: Iterable[T], depth: int = 4, newest: bool = False):
        import threading

        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.dropped = 0
        self._items, self._depth = items, 1 if newest else depth
        self._newest = newest
        self._queue: deque = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._produce, name="edgecnn-read-ahead", daemon=True)
        self._thread.start()

    def _put(self, entry, replace: bool = False) -> bool:
        with self._cond:
            if replace:
                self.dropped += len(self._queue)
                self._queue.clear()
            while len(self._queue) >= self._depth and not self._stop:
                self._cond.wait()
            if self._stop:
                return False
            self._queue.append(entry)
            self._cond.notify_all()
            return True

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._put((item, None), replace=self._newest):
                    return
            self._put(self._END)
        except BaseException as e:  # handed to the caller, after the items already read
            self._put((None, e))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[T]:
        try:
            while True:
                with self._cond:
                    while not self._queue:
                        self._cond.wait()
                    entry = self._queue.popleft()
                    self._cond.notify_all()
                if entry is self._END:
                    return
                item, error = entry
                if error is not None:
                    raise error
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop the producer (it finishes the item it is reading) and wait for it."""
        import threading

        with self._cond:
            self._stop = True
            self._queue.clear()
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()
