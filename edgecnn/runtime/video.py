"""Video files, network streams and cameras as a source for ``infer``: PyAV (FFmpeg's libraries, the
``[video]`` extra) decodes, and each frame goes to the contract's preprocessing as an RGB array, with no
file in between. No torch.

The argument says which kind of source it is: a URL (``rtsp://``, ``http://``, ...) is a live stream,
``/dev/videoN`` (``--camera N``) a V4L2 camera (live too), a path with a video suffix a file. A file is
read whole, every frame in order; a live source is read by ``pipeline.Ahead(newest=True)``, which keeps
only the newest frame. Every failure (a missing file, not a video, a codec FFmpeg lacks, a stream that
does not answer within the timeout or breaks off, a camera that does not exist) is a ``VideoError``
naming the source.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from edgecnn.errors import EdgeCNNError, first_line, require

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv",
                  ".mjpeg", ".mjpg", ".h264", ".264", ".hevc", ".y4m", ".ogv", ".3gp")
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "rtp", "srt")
TIMEOUT_S = 10.0  # a live source that sends nothing for this long is an error (open and read alike)
_CAMERA = re.compile(r"/dev/video\d+")


class VideoError(EdgeCNNError):
    """A video, stream or camera that cannot be opened or read (names the source)."""


def camera_path(index: int) -> str:
    """``--camera N``: the V4L2 device node of camera N."""
    return f"/dev/video{index}"


def kind_of(arg: str) -> str | None:
    """``"stream"``, ``"camera"`` or ``"file"`` for an argument ``infer`` reads as a video; None for
    anything else (an image, a folder, a glob)."""
    text = str(arg)
    scheme = text.split("://", 1)[0].lower() if "://" in text else None
    if scheme in LIVE_SCHEMES:
        return "stream"
    if _CAMERA.fullmatch(text):
        return "camera"
    if text.lower().endswith(VIDEO_SUFFIXES) and not Path(text).is_dir():
        return "file"
    return None


@dataclass
class Frame:
    """One decoded frame: ``index`` counts from 0 in the source; ``time`` is its presentation time in
    seconds (from the stream's timestamps; index / rate where it has none); ``rgb`` (H, W, 3) uint8."""

    index: int
    time: float
    rgb: np.ndarray
    decode_s: float


class Video:
    """An opened source. ``live`` sources (streams, cameras) are read newest-frame-first by the caller;
    ``rate`` is the stream's frame rate (None when it declares none), ``codec`` its codec's name."""

    def __init__(self, source: str, *, timeout: float | None = None):
        av = require("av", "video", f"reading {source}")
        self.timeout = TIMEOUT_S if timeout is None else timeout  # read at call time (tests shorten it)
        self.source, self.kind = str(source), kind_of(source) or "file"
        self.live = self.kind != "file"
        self.frames_read = 0
        self._av = av
        if self.kind == "file":
            self._check_file(Path(source))
        options = {}
        fmt = None
        if self.kind == "camera":
            if not os.path.exists(self.source):
                raise VideoError(f"{self.source}: no such camera (list them with: ls /dev/video*)")
            fmt = "v4l2"
        elif self.kind == "stream" and self.source.lower().startswith("rtsp"):
            options["rtsp_transport"] = "tcp"  # through NAT and firewalls; UDP loses frames silently
        t0 = time.perf_counter()
        try:
            self.container = av.open(self.source, format=fmt, options=options,
                                     timeout=None if self.kind == "file" else (self.timeout, self.timeout))
        except av.FFmpegError as e:
            # FFmpeg reports its own timeout as "immediate exit requested" (or a protocol's parse error)
            if self.live and (isinstance(e, (av.error.TimeoutError, av.error.ExitError))
                              or time.perf_counter() - t0 >= self.timeout * 0.95):
                raise VideoError(f"{self.source}: no answer within {self.timeout:g} s; check the address and "
                                 "that the stream is running") from e
            raise VideoError(self._open_message(e)) from e
        streams = self.container.streams.video
        if not streams:
            self.container.close()
            raise VideoError(f"{self.source}: holds no video stream (audio only, or not a video)")
        self.stream = streams[0]
        self.stream.thread_type = "AUTO"  # FFmpeg's own threads: decode keeps pace on a multi-core device
        self.codec = self.stream.codec_context.name
        self.width, self.height = self.stream.codec_context.width, self.stream.codec_context.height
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.rate: Fraction | None = Fraction(rate) if rate else None
        self.frame_count = self.stream.frames or None  # the container's count; None when it does not say

    def _check_file(self, path: Path) -> None:
        if path.is_dir():
            raise VideoError(f"{path}: is a folder, not a video file")
        if not path.is_file():
            raise VideoError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise VideoError(f"{path}: empty file")

    def _open_message(self, e: Exception) -> str:
        av = self._av
        if isinstance(e, av.error.PermissionError):
            return f"{self.source}: permission denied ({first_line(e)})"
        if self.kind == "camera":
            return f"{self.source}: cannot open the camera ({first_line(e)})"
        if self.kind == "stream":
            return f"{self.source}: cannot open the stream ({first_line(e)})"
        if isinstance(e, av.error.InvalidDataError):
            return f"{self.source}: not a video, or a format FFmpeg cannot read"
        return f"{self.source}: cannot open the video ({first_line(e)})"

    def describe(self) -> str:
        rate = f"{float(self.rate):.3g} fps" if self.rate else "unknown rate"
        return f"{self.source}: {self.width}x{self.height} {self.codec}, {rate}"

    def frames(self) -> Iterator[Frame]:
        """Every frame, decoded and converted to RGB, in presentation order. An FFmpeg error part-way
        (a broken file, a stream that breaks off or stops answering) is a VideoError after the frames
        decoded before it; the end of the data ends the iteration."""
        av = self._av
        try:
            codec = self.stream.codec_context.codec
        except av.FFmpegError:
            codec = None
        if codec is None or not codec.is_decoder:
            raise VideoError(f"{self.source}: no decoder for its codec '{self.codec}' in this FFmpeg build")
        rate = float(self.rate) if self.rate else None
        decoded = self.container.decode(self.stream)
        while True:
            t0 = time.perf_counter()
            try:
                frame = next(decoded)
            except StopIteration:
                return
            except (av.error.TimeoutError, av.error.ExitError) as e:
                raise VideoError(f"{self.source}: no frame for {self.timeout:g} s after {self.frames_read} frames; "
                                 "the stream stopped answering") from e
            except av.FFmpegError as e:
                what = "the stream broke off" if self.live else "the file is damaged"
                raise VideoError(f"{self.source}: {what} after {self.frames_read} frames ({first_line(e)})") from e
            rgb = frame.to_ndarray(format="rgb24")
            t = frame.time
            if t is None:
                t = self.frames_read / rate if rate else 0.0
            index = self.frames_read
            self.frames_read += 1
            yield Frame(index, float(t), rgb, time.perf_counter() - t0)

    def close(self) -> None:
        self.container.close()


def open_video(source: str, *, timeout: float | None = None) -> Video:
    """Open ``source`` (file, stream URL or camera node) for reading; see ``Video``."""
    return Video(source, timeout=timeout)
