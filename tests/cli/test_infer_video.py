"""``edgecnn infer`` on videos, streams and cameras through the CLI: JSON lines per frame, the annotated
video decoded back (frame count, rate, box pixels where the detections are), the one-line errors with
what was processed kept, a fake V4L2 camera, and the whole run in a subprocess with torch blocked."""

import json
import os
import socket

import numpy as np
import pytest

from edgecnn.runtime import video as video_mod
from tests import http_server, onnx_models, videogen
from tests.conftest import run_cli

pytest.importorskip("av")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {"det": onnx_models.detector(d / "det.onnx"),
            "cls": onnx_models.classifier(d / "colors.onnx", weights={"path": "c.pt", "sha256": "1" * 64})}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {"h264": videogen.make(d / "white.mp4", frames=18, width=96, height=64, rate=12,
                                  background=(255, 255, 255)),
            "mjpeg": videogen.make(d / "white.avi", frames=12, width=96, height=64, rate=10, codec="mjpeg",
                                   background=(255, 255, 255))}


def _lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_jsonl_per_frame_and_summary(cli, models, clips):
    r = cli("infer", str(clips["h264"]), "-m", str(models["det"]), "--format", "jsonl")
    assert r.exit_code == 0, r.stderr
    recs = _lines(r.stdout)
    assert [x["frame"] for x in recs] == list(range(18))
    assert [x["time"] for x in recs] == pytest.approx([i / 12 for i in range(18)], abs=1e-4)
    assert all((x["width"], x["height"], x["task"]) == (96, 64, "detect") for x in recs)
    assert all([p["label"] for p in x["predictions"]] == ["cat", "dog"] for x in recs)
    assert "white.mp4: 96x64 h264, 12 fps" in r.stderr
    assert "18 frames in " in r.stderr and "0 skipped, 0 dropped" in r.stderr


def test_json_document_and_every(cli, models, clips):
    r = cli("infer", str(clips["h264"]), "--model", str(models["cls"]), "-f", "json", "--every", "4", "-k", "1")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["task"], doc["width"], doc["rate"], doc["codec"]) == ("classify", 96, 12.0, "h264")
    assert [f["frame"] for f in doc["frames"]] == [0, 4, 8, 12, 16]
    s = doc["summary"]
    assert (s["frames"], s["read"], s["skipped"], s["dropped"]) == (5, 18, 13, 0)
    assert set(s["ms_per_frame"]) == {"decode", "preprocess", "inference", "postprocess"}


def test_saved_video_has_every_frame_and_the_boxes(cli, models, clips, tmp_path):
    out = tmp_path / "out" / "annotated.avi"
    r = cli("infer", str(clips["mjpeg"]), "--model", str(models["det"]), "--save", str(out), "--format", "jsonl")
    assert r.exit_code == 0, r.stderr
    assert f"annotated video in {out} (12 frames, mjpeg)" in r.stderr
    frames, times, codec, rate = videogen.read(out)
    assert (len(frames), codec, rate) == (12, "mjpeg", 10)  # same codec family, same frame rate
    assert times == pytest.approx([i / 10 for i in range(12)])
    recs = _lines(r.stdout)
    for i, (got, rec) in enumerate(zip(frames, recs, strict=True)):
        src = videogen.frame_rgb(i, 96, 64, (255, 255, 255)).astype(int)
        diff = np.abs(got.astype(int) - src).mean(-1)
        x1, y1, x2, y2 = (round(v) for v in rec["predictions"][0]["box"])  # cat, the best box
        assert diff[y2 - 1, x1 + 2:x2 - 2].mean() > 40, i  # its bottom edge is drawn
        # its left edge is drawn too (the box's inside may hold tags: one that finds no room above goes inside)
        assert diff[(y1 + y2) // 2:y2 - 1, x1].mean() > 40, i
        assert diff[-3:, :].mean() < 15, i  # below every box: untouched


def test_saved_h264_to_a_folder_is_named_after_the_source(cli, models, clips, tmp_path):
    r = cli("infer", str(clips["h264"]), "-m", str(models["det"]), "--save", str(tmp_path / "out"),
            "--max-fps", "4")
    assert r.exit_code == 0, r.stderr
    frames, times, codec, _ = videogen.read(tmp_path / "out" / "white.mp4")
    assert (len(frames), codec) == (6, "h264")  # every third frame, each shown at its own time
    assert times == pytest.approx([i * 3 / 12 for i in range(6)])
    assert r.stdout.splitlines()[1].startswith("frame 3 (0.250 s): 2 detections: cat 0.")


@pytest.mark.parametrize("args,message,code", [
    (["missing.mp4"], "Error: missing.mp4: no such file", 1),
    (["--camera", "97"], "Error: /dev/video97: no such camera (list them with: ls /dev/video*)", 1),
    (["clip.mp4", "more.jpg"], "Error: one video, stream or camera per run (clip.mp4); images and folders in a "
                               "run of their own", 2),
    (["clip.mp4", "-f", "csv"], "Error: unknown --format 'csv'; choose one of: table, json, jsonl", 2),
    (["clip.mp4", "--every", "0"], "Error: --every must be >= 1, got 0", 2),
    (["img.png", "--max-fps", "2"], "Error: --every and --max-fps apply to a video, stream or camera", 2),
])
def test_bad_input_is_one_line(cli, models, args, message, code):
    r = cli("infer", *args, "-m", str(models["det"]))
    assert r.exit_code == code and r.stderr.strip().splitlines()[-1] == message, r.stderr
    assert "Traceback" not in r.stderr


def test_not_a_video_is_one_line(cli, models, tmp_path):
    (tmp_path / "notes.mp4").write_text("hello\n")
    r = cli("infer", str(tmp_path / "notes.mp4"), "-m", str(models["det"]))
    assert r.exit_code == 1 and r.stderr.strip() == f"Error: {tmp_path / 'notes.mp4'}: not a video, or a format " \
                                                    "FFmpeg cannot read"


def test_stream_that_drops_keeps_records_and_a_playable_video(cli, models, tmp_path):
    ts = videogen.make(tmp_path / "live.ts", frames=48, width=96, height=64, background=(255, 255, 255))
    out = tmp_path / "kept.mp4"
    with http_server.serve() as srv:
        body = ts.read_bytes()
        srv.files["/live.ts"] = body[: len(body) // 2]
        srv.truncate.add("/live.ts")
        r = cli("infer", srv.base + "/live.ts", "-m", str(models["det"]), "-f", "jsonl", "--save", str(out))
    assert r.exit_code == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Error: {srv.base}/live.ts: the stream broke off after ") and "Traceback" not in r.stderr
    recs = _lines(r.stdout)  # every record written before the break, each a whole line
    assert 0 < len(recs) < 48
    frames, _, codec, _ = videogen.read(out)
    assert len(frames) == len(recs) and codec == "h264"


def test_stream_that_does_not_answer(cli, models, monkeypatch):
    monkeypatch.setattr(video_mod, "TIMEOUT_S", 0.5)
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        url = f"rtsp://127.0.0.1:{srv.getsockname()[1]}/cam"
        r = cli("infer", url, "-m", str(models["det"]))
    assert r.exit_code == 1
    assert r.stderr.strip() == f"Error: {url}: no answer within 0.5 s; check the address and that the stream is " \
                               "running"


def test_camera_opens_through_v4l2_and_runs_live(cli, models, clips, monkeypatch):
    """No camera here: /dev/video5 'exists' and av.open hands back a file's container; what is checked is
    how the camera is opened (V4L2, no timeout on a file) and that it runs as a live source."""
    import av

    calls = []
    real_open, real_exists = av.open, os.path.exists

    def fake_open(url, *a, **kw):
        calls.append((url, kw.get("format")))
        return real_open(str(clips["mjpeg"]))

    monkeypatch.setattr(av, "open", fake_open)
    monkeypatch.setattr(os.path, "exists", lambda p: p == "/dev/video5" or real_exists(p))
    r = cli("infer", "--camera", "5", "--model", str(models["det"]), "--every", "2", "--format", "jsonl")
    assert r.exit_code == 0, r.stderr
    assert calls == [("/dev/video5", "v4l2")]
    assert "(live: newest frame first)" in r.stderr
    recs = _lines(r.stdout)
    frames = [x["frame"] for x in recs]
    assert frames and frames == sorted(set(frames)) and frames[-1] == 10 and all(f % 2 == 0 for f in frames)


def test_video_without_torch(tmp_path, models, clips):
    out = tmp_path / "o.mp4"
    r = run_cli("infer", str(clips["h264"]), "--model", str(models["det"]), "--format", "jsonl", "--save", str(out),
                block_torch=True)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 18 and len(videogen.read(out)[0]) == 18


def test_bench_video_inline_and_ahead(cli, models, clips):
    r = cli("bench", str(models["det"]), "--video", str(clips["h264"]), "--format", "json")
    assert r.exit_code == 0, r.stderr
    rows = json.loads(r.stdout)["rows"]
    assert [(x["mode"], x["frames"], x["passes"]) for x in rows] == [("inline", 18, 2), ("ahead", 18, 2)]
    for x in rows:
        assert x["fps"] > 0 and x["fps_predicted"] > 0
        assert all(x["ms_per_frame"][s] > 0 for s in ("decode", "preprocess", "inference", "postprocess"))
    table = cli("bench", str(models["det"]), "--video", str(clips["h264"]))
    assert table.exit_code == 0 and table.stdout.splitlines()[0].split()[:5] == [
        "model", "mode", "frames", "frames/s", "predicted"]
    bad = cli("bench", str(models["det"]), "--video", "missing.mp4")
    assert bad.exit_code == 1 and bad.stderr.strip() == "Error: --video: missing.mp4: no such file"


def test_without_pyav_names_the_extra(models, clips):
    from tests.conftest import run_python

    code = (f"import sys; sys.modules['av'] = None; sys.argv = ['edgecnn', 'infer', {str(clips['h264'])!r}, '-m', "
            f"{str(models['det'])!r}]\nfrom edgecnn.cli.main import main; main()\n")
    r = run_python(code, block_torch=True)
    assert r.returncode == 1
    assert r.stderr.strip() == (f"Error: reading {clips['h264']} needs av, which is not installed; install it with: "
                                'pip install "edgecnn[video]"')
