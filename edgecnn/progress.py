"""A minimal one-line progress bar for long work (training epochs, folders of images). No torch.

Drawn on stderr only when stderr is a terminal, so logs, pipes and tests see nothing of it; the
caller prints its own summary line when the work is done.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``with Progress(total, "epoch 1/10") as bar: bar.update(n, loss="0.41")``.

    Redraws at most every ``min_interval`` seconds; ``close()`` clears the line."""

    def __init__(self, total: int, desc: str = "", stream: TextIO | None = None, enabled: bool | None = None,
                 width: int = 24, min_interval: float = 0.1):
        self.total, self.desc, self.width, self.min_interval = max(0, total), desc, width, min_interval
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _is_tty(self.stream) if enabled is None else enabled
        self.done, self._last, self._len = 0, 0.0, 0

    def update(self, n: int = 1, **postfix: object) -> None:
        self.done += n
        now = time.monotonic()
        if not self.enabled or (now - self._last < self.min_interval and self.done < self.total):
            return
        self._last = now
        filled = self.width * self.done // self.total if self.total else self.width
        tail = "  ".join(f"{k} {v}" for k, v in postfix.items())
        line = f"{self.desc} [{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total}  {tail}".rstrip()
        self.stream.write("\r" + line.ljust(self._len))
        self.stream.flush()
        self._len = len(line)

    def close(self) -> None:
        if self.enabled and self._len:
            self.stream.write("\r" + " " * self._len + "\r")
            self.stream.flush()
            self._len = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
