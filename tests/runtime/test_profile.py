"""Device profiles: keyed by file content and host tag; a changed file or another host finds nothing."""

import json

import pytest

from edgecnn.runtime import profile


def _choice(path, runtime="openvino"):
    return {"runtime": runtime, "precision": "int8", "path": str(path), "threads": 2, "batch": 1, "options": {}}


def test_save_then_lookup_by_content_and_host(tmp_path, home):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model-a")
    variant = tmp_path / "m.int8.onnx"
    variant.write_bytes(b"int8")
    written = profile.save(model, {"latency": _choice(variant)}, [{"runtime": "ort", "p50_ms": 3.0}], host="h1")
    assert written.parent == home / "profiles" / "h1"
    assert json.loads(written.read_text())["table"] == [{"runtime": "ort", "p50_ms": 3.0}]
    assert profile.lookup(model, "latency", host="h1")["runtime"] == "openvino"
    assert profile.lookup(model, "throughput", host="h1") is None  # not chosen
    assert profile.lookup(model, "latency", host="h2") is None  # another host kind
    model.write_bytes(b"model-b")  # re-exported: the old choice must not apply
    assert profile.lookup(model, "latency", host="h1") is None


def test_choice_whose_file_is_gone_is_ignored(tmp_path, home):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    variant = tmp_path / "gone.onnx"
    variant.write_bytes(b"y")
    profile.save(model, {"latency": _choice(variant)}, [], host="h")
    variant.unlink()
    assert profile.lookup(model, host="h") is None


@pytest.mark.parametrize("choices, message", [
    ({"fastest": {}}, "unknown objective"),
    ({"latency": {"runtime": "ort"}}, "lacks precision"),
    ({"latency": {"runtime": "tvm", "precision": "fp32", "path": "p", "threads": 1, "batch": 1, "options": {}}},
     "unknown runtime"),
])
def test_bad_choices_refused(tmp_path, home, choices, message):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    with pytest.raises(profile.ProfileError, match=message):
        profile.save(model, choices, [], host="h")
    assert not (home / "profiles").exists()


def test_unreadable_or_missing_profile_is_none(tmp_path, home):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    assert profile.lookup(model, host="h") is None
    path = profile.profile_path(model, "h")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert profile.lookup(model, host="h") is None
    assert profile.lookup(tmp_path / "absent.onnx", host="h") is None
