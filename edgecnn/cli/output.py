"""Rendering of command results: aligned plain-text tables and JSON. No torch."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from edgecnn.errors import UsageError

FORMATS = ("table", "json")


def check_format(fmt: str, allowed: Sequence[str] = FORMATS) -> str:
    if fmt not in allowed:
        raise UsageError(f"unknown --format '{fmt}'; choose one of: {', '.join(allowed)}")
    return fmt


def human(n: float) -> str:
    """12_345_678 -> '12.35M' (for MACs and parameter columns people scan)."""
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return str(int(n))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[str] = ()) -> str:
    """Columns padded to their widest cell; columns named in ``right`` are right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        parts = [c.rjust(w) if h in right else c.ljust(w) for c, w, h in zip(r, widths, headers, strict=True)]
        return "  ".join(parts).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def emit_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
