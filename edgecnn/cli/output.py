"""Rendering of command results: aligned plain-text tables, JSON, streamed JSON/JSONL/CSV records,
and the parsing of size/number options. No torch."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from typing import TextIO

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


def parse_size(text: str | None, option: str = "--input-size") -> tuple[int, int] | None:
    """``S``, ``HxW`` or ``H,W`` (also ``"H W"``) -> (H, W); ``option`` names the flag in errors."""
    if text is None:
        return None
    parts = text.replace("x", " ").replace(",", " ").split()
    try:
        hw = [int(p) for p in parts]
    except ValueError:
        hw = []
    if len(hw) not in (1, 2) or min(hw) < 1:
        raise UsageError(f"{option} takes S, HxW or H,W with positive integers, got '{text}'")
    return (hw[0], hw[-1])


def parse_floats(text: str | None, option: str) -> tuple[float, ...] | None:
    """``0.5,0.5,0.5`` (commas or spaces) -> floats; ``option`` names the flag in errors."""
    if text is None:
        return None
    try:
        values = tuple(float(p) for p in text.replace(",", " ").split())
    except ValueError:
        values = ()
    if not values:
        raise UsageError(f"{option} takes comma-separated numbers, got '{text}'")
    return values


# ---- streamed records: results written as they come, so a folder of any size is bounded memory ----

RECORD_FORMATS = ("table", "json", "jsonl", "csv")


class JsonStream:
    """One JSON object on ``stream``: ``head``'s keys, then ``key``: [records...] written one per
    line as they come, then ``tail``'s keys given to ``close``. Valid JSON once closed."""

    def __init__(self, head: dict, key: str, stream: TextIO | None = None):
        self.out = stream or sys.stdout
        inner = json.dumps(head, indent=2)[1:-1].rstrip()  # the head's lines, without its braces
        self.out.write("{" + inner + ("," if head else "") + f"\n  {json.dumps(key)}: [")
        self.n = 0

    def write(self, record: dict) -> None:
        self.out.write(("," if self.n else "") + "\n    " + json.dumps(record))
        self.n += 1

    def close(self, tail: dict | None = None) -> None:
        self.out.write("\n  ]" if self.n else "]")
        for k, v in (tail or {}).items():
            self.out.write(f",\n  {json.dumps(k)}: {json.dumps(v)}")
        self.out.write("\n}\n")
        self.out.flush()


class JsonlStream:
    """One JSON object per line."""

    def __init__(self, stream: TextIO | None = None):
        self.out = stream or sys.stdout

    def write(self, record: dict) -> None:
        self.out.write(json.dumps(record) + "\n")

    def close(self, tail: dict | None = None) -> None:
        self.out.flush()


class CsvStream:
    """RFC-4180 CSV with a fixed header; ``write`` takes one row (a sequence of cells, None -> empty)."""

    def __init__(self, header: Sequence[str], stream: TextIO | None = None):
        self.out = stream or sys.stdout
        self.writer = csv.writer(self.out, lineterminator="\n")
        self.writer.writerow(header)

    def write(self, row: Sequence[object]) -> None:
        self.writer.writerow(["" if c is None else c for c in row])

    def close(self, tail: dict | None = None) -> None:
        self.out.flush()

