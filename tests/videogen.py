"""Small test videos made with PyAV: moving shapes on a background, in a chosen codec and rate.

``frame_rgb(i, ...)`` is frame i exactly as written (before the codec's loss), so a test can compare a
decoded frame with what went in."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def frame_rgb(i: int, width: int, height: int, background=(0, 0, 0)) -> np.ndarray:
    """A square moving right and a circle moving down over ``background``, frame ``i``."""
    im = Image.new("RGB", (width, height), background)
    d = ImageDraw.Draw(im)
    s = max(8, min(width, height) // 4)
    x = (4 + 3 * i) % max(1, width - s)
    y = (4 + 2 * i) % max(1, height - s)
    d.rectangle((x, height // 2 - s // 2, x + s, height // 2 + s // 2), fill=(230, 40, 40))
    d.ellipse((width // 2 - s // 2, y, width // 2 + s // 2, y + s), fill=(40, 200, 60))
    return np.asarray(im)


def make(path: Path, *, frames: int = 24, width: int = 96, height: int = 64, rate: int = 12,
         codec: str = "h264", background=(0, 0, 0)) -> Path:
    """Write ``frames`` frames of moving shapes to ``path`` (the suffix picks the container). ``codec``:
    ``h264`` (libx264 when the wheel has it, else MPEG-4 part 2), ``mjpeg`` or ``mpeg4``."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        name = codec
        if codec == "h264":
            name = "libx264" if _has_encoder("libx264") else "mpeg4"
        stream = out.add_stream(name, rate=Fraction(rate))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if name == "mjpeg" else "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_rgb(i, width, height, background), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def read(path: Path) -> tuple[list[np.ndarray], list[float], str, Fraction | None]:
    """Every frame of ``path`` as RGB arrays, their times in seconds, the codec name and the frame rate."""
    import av

    with av.open(str(path)) as f:
        s = f.streams.video[0]
        frames, times = [], []
        for fr in f.decode(s):
            frames.append(fr.to_ndarray(format="rgb24"))
            times.append(float(fr.time))
        return frames, times, s.codec_context.name, s.average_rate


def _has_encoder(name: str) -> bool:
    import av

    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:  # av raises its own UnknownCodecError
        return False
