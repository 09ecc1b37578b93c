"""The annotated video of ``infer --save out.mp4``: frames encoded with PyAV in the source's codec family
at its frame rate, each at its own presentation time (so a run that skipped or dropped frames still plays
at the source's speed). No torch.

The file is written beside the target under a hidden temporary name and renamed into place by ``close``,
which also runs when the run fails part-way: the frames processed so far are kept as a finished file that
plays (encoder flushed, container trailer written). A run that wrote no frame leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from edgecnn.errors import EdgeCNNError, first_line, require
from edgecnn.fileio import umask

# source codec -> encoders to try, best first; anything else is written as H.264 (then MPEG-4 part 2)
FAMILY = {"h264": ("libx264", "h264"), "hevc": ("libx265", "hevc", "libx264"), "mpeg4": ("mpeg4",),
          "mjpeg": ("mjpeg",), "vp8": ("libvpx",), "vp9": ("libvpx-vp9",), "av1": ("libaom-av1", "libsvtav1")}
FALLBACK = ("libx264", "h264", "mpeg4")
# x264's default preset (medium) took 51 ms a 640x480 frame on a loaded 2-core Xeon, superfast 5 ms (twice
# the bytes): the encoder runs beside the model on the device, so speed wins
ENCODER_OPTIONS = {"libx264": {"preset": "superfast"}}
DEFAULT_RATE = Fraction(25)


class VideoWriteError(EdgeCNNError):
    """The annotated video cannot be written (names the file)."""


def encoders_for(codec: str | None) -> list[str]:
    """Encoder names to try for a source in ``codec``: its family's, then the fallbacks."""
    out = list(FAMILY.get(codec or "", ()))
    return out + [c for c in FALLBACK if c not in out]


class VideoWriter:
    """Write RGB frames (``write``) to ``path``; ``close`` finishes the file. ``rate`` is the source's frame
    rate (the stream's time base: 1/rate), ``codec`` the source's codec name (its family is kept)."""

    def __init__(self, path: str | Path, width: int, height: int, rate: Fraction | None, codec: str | None):
        av = require("av", "video", "--save of a video")
        self.path = Path(path)
        self.rate = Fraction(rate) if rate else DEFAULT_RATE
        self.frames = 0
        self._last_pts = -1
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=self.path.suffix or ".mp4",
                                       dir=self.path.parent)
        except OSError as e:
            raise VideoWriteError(f"cannot write {self.path}: {e.strerror or first_line(e)}") from e
        os.close(fd)
        self._tmp = Path(tmp)
        try:
            self.container = av.open(str(self._tmp), "w")
        except (av.FFmpegError, ValueError) as e:
            self._tmp.unlink(missing_ok=True)
            raise VideoWriteError(f"{self.path}: no video format for the suffix '{self.path.suffix}'; "
                                  "use .mp4, .mkv or .avi") from e
        # 4:2:0 chroma needs even sizes: an odd last row or column is dropped
        self.width, self.height = max(2, width - width % 2), max(2, height - height % 2)
        self.stream, errors = None, []
        for name in encoders_for(codec):
            try:
                stream = self.container.add_stream(name, rate=self.rate, options=ENCODER_OPTIONS.get(name, {}))
            except (av.FFmpegError, ValueError) as e:  # no such encoder, or the container cannot hold it
                errors.append(f"{name}: {first_line(e)}")
                continue
            stream.width, stream.height = self.width, self.height
            stream.pix_fmt = "yuvj420p" if name == "mjpeg" else "yuv420p"
            stream.time_base = self._time_base = 1 / self.rate
            if name == "mjpeg":
                stream.codec_context.qmin, stream.codec_context.qmax = 2, 4  # near-lossless, like a camera's
            self.stream, self.codec = stream, name
            break
        if self.stream is None:
            self.container.close()
            self._tmp.unlink(missing_ok=True)
            raise VideoWriteError(f"{self.path}: no encoder this FFmpeg build can put in a "
                                  f"'{self.path.suffix}' file ({'; '.join(errors)})")
        self._av = av

    def write(self, image, time_s: float) -> None:
        """Encode one frame (a PIL image or (H, W, 3) uint8 array) shown at ``time_s`` seconds."""
        av = self._av
        rgb = np.asarray(image)[: self.height, : self.width]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        pts = max(round(time_s * self.rate), self._last_pts + 1)  # strictly increasing, whatever the source
        # the encoder's time base (1/rate); the stream's is the muxer's own once the header is written
        frame.pts, frame.time_base = pts, self._time_base
        self._last_pts = pts
        try:
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
        except (av.FFmpegError, OSError) as e:
            raise VideoWriteError(f"cannot write {self.path}: {first_line(e)}") from e
        self.frames += 1

    def close(self) -> Path | None:
        """Flush the encoder, finish the container and rename the file into place; the path written,
        or None when no frame was written (then no file is left)."""
        av = self._av
        try:
            if self.frames:
                for packet in self.stream.encode(None):
                    self.container.mux(packet)
            self.container.close()
            if not self.frames:
                self._tmp.unlink(missing_ok=True)
                return None
            os.chmod(self._tmp, self.path.stat().st_mode & 0o777 if self.path.exists() else 0o666 & ~umask())
            os.replace(self._tmp, self.path)
        except (av.FFmpegError, OSError) as e:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            raise VideoWriteError(f"cannot write {self.path}: {first_line(e)}") from e
        return self.path
