"""Decode ahead: load items on a small thread pool while the caller runs the model, in input order.

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
