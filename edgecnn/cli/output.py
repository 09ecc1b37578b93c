"""CLI output: format checks, JSON, streamed JSON/JSONL/CSV records, and the parsing of size/number
options. No torch. (Tables and number formatting, shared with library code: ``edgecnn.tables``.)"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import TextIO

from edgecnn.errors import UsageError

FORMATS = ("table", "json")


def check_format(fmt: str, allowed: Sequence[str] = FORMATS) -> str:
    if fmt not in allowed:
        raise UsageError(f"unknown --format '{fmt}'; choose one of: {', '.join(allowed)}")
    return fmt


def emit_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def parse_size(text: str | None, option: str = "--input-size") -> tuple[int, int] | None:
    """``S``, ``HxW`` or ``H,W`` (also ``"H W"``) -> (H, W); ``option`` names the flag in errors."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*(?:(?:[xX,]|\s)\s*(\d+)\s*)?", text)
    hw = [int(g) for g in m.groups() if g is not None] if m else []
    if not hw or min(hw) < 1:
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
        import csv  # only for --format csv (cold start)

        self.writer = csv.writer(self.out, lineterminator="\n")
        self.writer.writerow(header)

    def write(self, row: Sequence[object]) -> None:
        self.writer.writerow(["" if c is None else c for c in row])

    def close(self, tail: dict | None = None) -> None:
        self.out.flush()

