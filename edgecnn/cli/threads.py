"""``--threads N`` of train, eval and demo: one option, one rule (``edgecnn.threads``), one busy line.

``bench`` takes a comma list of thread counts and keeps each backend's own default (a sweep measures
what it is given); ``infer`` leaves the default to onnxruntime (one thread per physical core).
"""

from __future__ import annotations

from typing import Any

import typer


def option(what: str, workers: bool = False) -> Any:
    """The ``--threads`` option; ``what`` says which pools it sizes (torch, onnxruntime intra-op)."""
    minus = " minus --workers (threads + workers <= cores)" if workers else ""
    return typer.Option(None, "--threads", show_default=False,
                        help=f"{what} [default: the physical cores available{minus}; 1 when other jobs hold "
                             "the cores at start: load average above them, and as many tasks runnable].")


def resolve(threads: int | None, workers: int = 0) -> int:
    """The thread count to run with; prints the busy-machine line on stderr when there is one."""
    from edgecnn import threads as core

    plan = core.resolve(threads, workers=workers)
    note = plan.note()
    if note:
        typer.echo(f"Warning: {note}", err=True)
    return plan.n
