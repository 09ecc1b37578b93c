"""Frames of a video source -> predictions, one frame at a time through a ``Predictor``'s engine and
post-processing, each stage timed. No torch.

A file: every frame, in order, decoded and preprocessed on a second thread (``pipeline.Ahead``) while
the model runs on the previous one, so a frame costs the slower of the two sides, not their sum. A live
source: the newest frame wins (the reader thread keeps one; the ones the model had no time for are
``dropped``), and preprocessing runs on the caller's side, only for the frames that are used.
``every`` (every Nth frame) and ``max_fps`` (at most this many frames per second of the source's time)
choose frames before they are preprocessed; the frames they pass over are ``skipped``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from edgecnn.errors import UsageError
from edgecnn.runtime.image import Geometry, preprocess
from edgecnn.runtime.pipeline import Ahead
from edgecnn.runtime.predict import Predictor
from edgecnn.runtime.video import Frame, Video

STAGES = ("decode", "preprocess", "inference", "postprocess")
READ_AHEAD = 4  # decoded frames of a file held ahead of the model (a 1080p RGB frame is 6 MB)


@dataclass
class FrameResult:
    """One processed frame: its index and time in the source, the frame's (width, height), the task's
    records (as ``Result.predictions``) and the RGB frame itself when asked for (``--save``)."""

    index: int
    time: float
    size: tuple[int, int]
    predictions: list[dict]
    image: Image.Image | None = None


@dataclass
class StreamStats:
    """Counts and seconds per stage, summed over the processed frames (``decode`` over every frame read)."""

    frames: int = 0  # processed
    read: int = 0  # decoded from the source (processed + skipped + dropped)
    skipped: int = 0  # passed over by --every / --max-fps
    dropped: int = 0  # live source: newer frames arrived before the model was free
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def predicted_fps(self, extra_s: float = 0.0, ahead: bool = True) -> float | None:
        """Frames/s the stage split predicts for a file: with decode ahead, one frame costs the slower side's
        work (reader thread: decode of every frame read + preprocess; model: inference + postprocess +
        ``extra_s``, e.g. annotate and encode); inline, the sum of both. None before any frame."""
        if not self.frames:
            return None
        sec = self.seconds
        reader = sec["decode"] + sec["preprocess"]
        model = sec["inference"] + sec["postprocess"] + extra_s
        per = (max(reader, model) if ahead else reader + model) / self.frames
        return round(1 / per, 2) if per > 0 else None

    def ms_per_frame(self) -> dict[str, float]:
        per = max(self.frames, 1)
        return {s: round(v / (max(self.read, 1) if s == "decode" else per) * 1e3, 3) for s, v in self.seconds.items()}


@dataclass
class _Prepared:
    frame: Frame
    image: Image.Image
    x: np.ndarray | None = None
    geom: Geometry | None = None
    prep_s: float = 0.0


def check_rates(every: int, max_fps: float | None) -> None:
    if every < 1:
        raise UsageError(f"--every must be >= 1, got {every}")
    if max_fps is not None and max_fps <= 0:
        raise UsageError(f"--max-fps must be > 0, got {max_fps:g}")


class StreamRunner:
    """Runs ``predictor`` over the frames of ``video``; iterate ``run()`` for the results, read ``stats``."""

    def __init__(self, predictor: Predictor, video: Video, *, every: int = 1, max_fps: float | None = None,
                 ahead: bool = True):
        check_rates(every, max_fps)
        self.predictor, self.video = predictor, video
        self.every, self.min_gap = every, (1.0 / max_fps if max_fps else 0.0)
        self.ahead = ahead  # False: decode inline (the sequential baseline ``bench --video`` compares)
        self.spec = predictor.contract.preprocess
        self.stats = StreamStats()
        self._last_time: float | None = None

    def _chosen(self) -> Iterator[Frame]:
        """The source's frames that --every / --max-fps keep (counted as read and skipped here)."""
        for f in self.video.frames():
            self.stats.read += 1
            self.stats.seconds["decode"] += f.decode_s
            gap_ok = self._last_time is None or f.time - self._last_time >= self.min_gap - 1e-6
            if f.index % self.every or not gap_ok:
                self.stats.skipped += 1
                continue
            self._last_time = f.time
            yield f

    def _prepare(self, f: Frame) -> _Prepared:
        t0 = time.perf_counter()
        im = Image.fromarray(f.rgb, "RGB")
        x, geom = preprocess(im, self.spec)
        return _Prepared(f, im, x, geom, time.perf_counter() - t0)

    def run(self, keep_images: bool = False) -> Iterator[FrameResult]:
        """Results in the source's order (for a live source, of the frames not dropped)."""
        live = self.video.live
        if not self.ahead:
            source = (self._prepare(f) for f in self._chosen())
            reader = None
        elif live:
            reader = Ahead(self._chosen(), newest=True)
            source = (self._prepare(f) for f in reader)
        else:
            reader = Ahead((self._prepare(f) for f in self._chosen()), depth=READ_AHEAD)
            source = iter(reader)
        engine, sec = self.predictor.engine, self.stats.seconds
        try:
            for item in source:
                sec["preprocess"] += item.prep_s
                t0 = time.perf_counter()
                outputs = engine.run(item.x[None])
                t1 = time.perf_counter()
                records = self.predictor.postprocess(outputs, [item.geom])[0]
                sec["inference"] += t1 - t0
                sec["postprocess"] += time.perf_counter() - t1
                self.stats.frames += 1
                if reader is not None:
                    self.stats.dropped = reader.dropped
                yield FrameResult(item.frame.index, item.frame.time, item.geom.orig_size, records,
                                  item.image if keep_images else None)
        finally:
            if reader is not None:
                reader.close()
                self.stats.dropped = reader.dropped
