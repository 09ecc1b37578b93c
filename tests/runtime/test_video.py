"""Video sources in the torch-free runtime: the read-ahead / newest-frame-wins reader, files in H.264 and
MJPEG frame by frame, a slow generator standing in for a live source (frames dropped, counted), the
annotated writer finishing a partial file, streams that break off or do not answer."""

import socket
import threading
import time

import numpy as np
import pytest

from edgecnn.errors import UsageError
from edgecnn.runtime.pipeline import Ahead
from edgecnn.runtime.predict import Predictor
from edgecnn.runtime.session import Engine
from edgecnn.runtime.stream import StreamRunner
from edgecnn.runtime.video import Frame, VideoError, kind_of, open_video
from edgecnn.runtime.video_writer import VideoWriter
from tests import http_server, onnx_models, videogen

pytest.importorskip("av")


@pytest.fixture(scope="module")
def det(tmp_path_factory):
    return onnx_models.detector(tmp_path_factory.mktemp("m") / "det.onnx")


def test_kind_of_arguments():
    assert [kind_of(a) for a in ("clip.MP4", "rtsp://h/s", "http://h/a.ts", "/dev/video0", "a.jpg", "dir/",
                                 "/dev/video")] == ["file", "stream", "stream", "camera", None, None, None]


def test_ahead_keeps_every_item_in_order_and_forwards_an_error():
    def gen():
        yield from range(20)
        raise ValueError("broken at 20")

    got = []
    with pytest.raises(ValueError, match="broken at 20"):
        for x in Ahead(gen(), depth=3):
            got.append(x)
            time.sleep(0.001)
    assert got == list(range(20))


def test_ahead_newest_wins_when_the_consumer_is_slow():
    def producer():
        for i in range(60):
            time.sleep(0.002)
            yield i

    reader = Ahead(producer(), newest=True)
    got = []
    for x in reader:
        got.append(x)
        time.sleep(0.02)  # ten producer periods per item taken
    assert got == sorted(set(got)) and got[-1] == 59  # in order, and the last frame is never lost
    assert reader.dropped == 60 - len(got) and reader.dropped > 30


def test_ahead_close_stops_the_producer():
    started = threading.Event()

    def endless():
        i = 0
        while True:
            started.set()
            yield i
            i += 1

    reader = Ahead(endless(), depth=2)
    it = iter(reader)
    assert next(it) == 0
    it.close()  # the generator's finally closes the reader and joins its thread
    assert not reader._thread.is_alive()


@pytest.mark.parametrize("codec,suffix", [("h264", ".mp4"), ("mjpeg", ".avi")])
def test_every_frame_of_a_file_in_order(tmp_path, det, codec, suffix):
    clip = videogen.make(tmp_path / f"clip{suffix}", frames=20, width=96, height=64, rate=10, codec=codec,
                         background=(255, 255, 255))
    video = open_video(str(clip))
    assert (video.width, video.height, float(video.rate), video.live) == (96, 64, 10.0, False)
    runner = StreamRunner(Predictor(Engine(det)), video)
    results = list(runner.run())
    assert [r.index for r in results] == list(range(20))
    assert [r.time for r in results] == pytest.approx([i / 10 for i in range(20)])
    # the detector's scores are DET_SCORES times the mean pixel: a mostly white frame keeps cat and dog
    assert all([p["label"] for p in r.predictions] == ["cat", "dog"] for r in results)
    st = runner.stats
    assert (st.frames, st.read, st.skipped, st.dropped) == (20, 20, 0, 0)
    assert all(v > 0 for v in st.seconds.values())


def test_every_and_max_fps_skip_frames(tmp_path, det):
    clip = videogen.make(tmp_path / "c.mp4", frames=24, rate=12)
    runner = StreamRunner(Predictor(Engine(det)), open_video(str(clip)), every=3)
    assert [r.index for r in runner.run()] == list(range(0, 24, 3))
    assert (runner.stats.skipped, runner.stats.read) == (16, 24)
    runner = StreamRunner(Predictor(Engine(det)), open_video(str(clip)), max_fps=4)  # 12 fps source
    assert [r.index for r in runner.run()] == list(range(0, 24, 3))
    with pytest.raises(UsageError, match="--every must be >= 1"):
        StreamRunner(Predictor(Engine(det)), open_video(str(clip)), every=0)


class _SlowLive:
    """A live source: a frame every ``period`` seconds, whatever the consumer does."""

    live = True

    def __init__(self, n: int, period: float):
        self.n, self.period = n, period

    def frames(self):
        rgb = np.full((48, 64, 3), 255, np.uint8)
        for i in range(self.n):
            time.sleep(self.period)
            yield Frame(i, i * self.period, rgb, 0.0)


def test_live_source_slower_model_drops_frames_and_counts_them(det):
    engine = Engine(det)
    run = engine.run

    def slow_run(x):
        time.sleep(0.03)  # the model takes six source periods
        return run(x)

    engine.run = slow_run
    runner = StreamRunner(Predictor(engine), _SlowLive(80, 0.005))
    t0 = time.perf_counter()
    got = [r.index for r in runner.run()]
    took = time.perf_counter() - t0
    st = runner.stats
    assert got == sorted(set(got)) and got[-1] == 79
    assert st.frames == len(got) and st.read == 80 and st.frames + st.dropped + st.skipped == 80
    assert st.dropped > 40
    assert took < 0.03 * 80  # bounded latency: less than the model alone would take on every frame


def test_writer_finishes_a_partial_file_that_plays(tmp_path):
    out = tmp_path / "out.mp4"
    w = VideoWriter(out, 64, 48, None, "h264")
    for i in range(90):  # past the muxer's change of the stream's time base at the header
        w.write(videogen.frame_rgb(i, 64, 48), i / 25)
    assert not out.exists()  # only a hidden temporary file while writing
    assert w.close() == out
    frames, times, codec, rate = videogen.read(out)
    assert len(frames) == 90 and codec == "h264" and rate == 25 and times == pytest.approx([i / 25 for i in range(90)])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    empty = VideoWriter(tmp_path / "none.mp4", 64, 48, None, "h264")
    assert empty.close() is None and not list(tmp_path.glob("*none*"))


def test_stream_that_breaks_off_is_an_error_after_its_frames(tmp_path):
    ts = videogen.make(tmp_path / "a.ts", frames=40)
    with http_server.serve() as srv:
        body = ts.read_bytes()
        srv.files["/a.ts"] = body[: len(body) // 2]
        srv.truncate.add("/a.ts")  # the server promises the whole file, then closes the connection
        video = open_video(srv.base + "/a.ts", timeout=5)
        assert video.live
        n = 0
        with pytest.raises(VideoError, match=r"a\.ts: the stream broke off after \d+ frames"):
            for _ in video.frames():
                n += 1
        assert 0 < n < 40


def test_stream_that_does_not_answer_times_out():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)  # accepts the connection, never sends a byte
        url = f"http://127.0.0.1:{srv.getsockname()[1]}/live"
        t0 = time.perf_counter()
        with pytest.raises(VideoError, match=r"/live: no answer within 0\.5 s; check the address"):
            open_video(url, timeout=0.5)
        assert time.perf_counter() - t0 < 5


def test_files_that_are_not_videos(tmp_path):
    (tmp_path / "text.mp4").write_text("not a video\n")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="text.mp4: not a video, or a format FFmpeg cannot read"):
        open_video(str(tmp_path / "text.mp4"))
    with pytest.raises(VideoError, match="empty.mp4: empty file"):
        open_video(str(tmp_path / "empty.mp4"))
    with pytest.raises(VideoError, match="missing.mp4: no such file"):
        open_video(str(tmp_path / "missing.mp4"))


def test_audio_only_file_has_no_video_stream(tmp_path):
    import av

    path = tmp_path / "sound.mkv"
    with av.open(str(path), "w") as out:
        s = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*s.encode(frame), *s.encode(None)]:
            out.mux(packet)
    with pytest.raises(VideoError, match=r"sound\.mkv: holds no video stream \(audio only, or not a video\)"):
        open_video(str(path))
