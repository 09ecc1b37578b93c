"""Streamed record writers and option parsers of cli/output.py."""

import csv
import io
import json

import pytest

from edgecnn.cli.output import CsvStream, JsonlStream, JsonStream, parse_floats, parse_size
from edgecnn.errors import UsageError


@pytest.mark.parametrize("head", [{}, {"model": "m.onnx", "task": "detect"}])
@pytest.mark.parametrize("records", [[], [{"a": 1}], [{"a": 1}, {"b": [1, 2]}]])
def test_json_stream_is_one_valid_document(head, records):
    buf = io.StringIO()
    w = JsonStream(head, "results", buf)
    for r in records:
        w.write(r)
    w.close({"summary": {"n": len(records)}})
    assert json.loads(buf.getvalue()) == {**head, "results": records, "summary": {"n": len(records)}}


def test_jsonl_and_csv_streams():
    buf = io.StringIO()
    w = JsonlStream(buf)
    w.write({"a": 1})
    w.write({"b": None})
    assert [json.loads(line) for line in buf.getvalue().splitlines()] == [{"a": 1}, {"b": None}]
    buf = io.StringIO()
    w = CsvStream(["x", "y"], buf)
    w.write([1, None])
    w.write(["a,b", 'q"uote'])
    assert list(csv.reader(io.StringIO(buf.getvalue()))) == [["x", "y"], ["1", ""], ["a,b", 'q"uote']]


def test_option_parsers():
    assert parse_size("64") == (64, 64) and parse_size("48x64", "--size") == (48, 64)
    with pytest.raises(UsageError, match="--size takes S, HxW or H,W with positive integers, got '0'"):
        parse_size("0", "--size")
    assert parse_floats("0.5, 0.25 1", "--mean") == (0.5, 0.25, 1.0)
    with pytest.raises(UsageError, match="--std takes comma-separated numbers, got 'a,b'"):
        parse_floats("a,b", "--std")
