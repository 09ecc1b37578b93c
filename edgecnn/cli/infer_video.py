"""``edgecnn infer`` on a video file, a stream URL or a camera: the frame loop of ``infer`` (the work is
``edgecnn.runtime.stream``; this module writes the records, the annotated video and the summary).

stdout gets one record per processed frame (``table``: a line; ``jsonl``: a JSON object, flushed at once
so a reader of a live stream sees it; ``json``: one document, ``frames`` then ``summary``); stderr gets
the summary line. An error part-way (the stream breaks off, a damaged file) keeps what was done: the
records written and flushed, the annotated video finished so it plays, the summary printed; then the
error's line and exit 1. Ctrl-C ends a live source's run normally (that is how a camera is stopped).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import typer

from edgecnn.cli import output
from edgecnn.cli.infer import _count
from edgecnn.errors import EdgeCNNError, UsageError

VIDEO_FORMATS = ("table", "json", "jsonl")


def save_target(save: Path, source: str) -> Path:
    """``--save``: a file with a video suffix is the output itself; anything else is a folder, and the
    annotated video goes there as ``<source name>.mp4``."""
    from edgecnn.runtime.video import VIDEO_SUFFIXES

    if save.suffix.lower() in VIDEO_SUFFIXES:
        return save
    name = Path(source.split("://", 1)[-1].split("?", 1)[0]).stem or "stream"
    return save / f"{name}.mp4"


def _frame_line(rec: dict) -> str:
    preds, task = rec["predictions"], rec["task"]
    head = f"frame {rec['frame']} ({rec['time']:.3f} s)"
    if task == "detect":
        body = ", ".join(f"{p['label']} {p['score']:.2f} [{', '.join(f'{v:.0f}' for v in p['box'])}]" for p in preds)
        return f"{head}: {_count(len(preds), 'detection')}" + (f": {body}" if body else "")
    if task == "raw":
        return f"{head}: " + ", ".join(f"{p['output']} {'x'.join(map(str, p['shape']))}" for p in preds)
    return f"{head}: " + ", ".join(f"{p['label']} {p['score']:.4f}" for p in preds)


class _Records:
    """The chosen format on stdout, flushed after every frame."""

    def __init__(self, fmt: str, head: dict):
        self.fmt = fmt
        self.doc = output.JsonStream(head, "frames") if fmt == "json" else None

    def write(self, rec: dict) -> None:
        if self.doc is not None:
            self.doc.write(rec)
        elif self.fmt == "jsonl":
            sys.stdout.write(json.dumps(rec) + "\n")
        else:
            sys.stdout.write(_frame_line(rec) + "\n")
        sys.stdout.flush()

    def close(self, tail: dict) -> None:
        if self.doc is not None:
            self.doc.close(tail)
        sys.stdout.flush()


def summary(runner, seconds: float, provider: str, annotate_s: float | None) -> dict:
    st = runner.stats
    ms = st.ms_per_frame()
    if annotate_s is not None:
        ms["annotate"] = round(annotate_s / max(st.frames, 1) * 1e3, 3)
    return {"frames": st.frames, "read": st.read, "skipped": st.skipped, "dropped": st.dropped,
            "seconds": round(seconds, 4), "fps": round(st.frames / seconds, 2) if seconds > 0 and st.frames else None,
            # a file's frames are read ahead: the slower side sets the pace (a live source's pace is its own)
            "fps_predicted": None if runner.video.live else st.predicted_fps(annotate_s or 0.0),
            "ms_per_frame": ms, "provider": provider}


def summary_line(s: dict, saved: Path | None, writer=None) -> str:
    ms = s["ms_per_frame"]
    stages = (f"decode {ms['decode']:.1f} ms, preprocess {ms['preprocess']:.1f} ms, inference {ms['inference']:.1f} "
              f"ms, postprocess {ms['postprocess']:.2f} ms" + (f", annotate+encode {ms['annotate']:.1f} ms"
                                                               if "annotate" in ms else ""))
    pace = "" if s["fps_predicted"] is None else f", stage split predicts {s['fps_predicted']:.1f}"
    line = (f"{_count(s['frames'], 'frame')} in {s['seconds']:.2f} s ({s['fps'] or 0:.1f} frames/s{pace}; per frame: "
            f"{stages}); {s['skipped']} skipped, {s['dropped']} dropped; {s['provider']}")
    if saved is not None and writer is not None:
        line += f"; annotated video in {saved} ({_count(writer.frames, 'frame')}, {writer.codec})"
    return line


def run(source: str, predictor, *, fmt: str, save: Path | None, every: int, max_fps: float | None,
        relabel: Callable[[list[dict]], list[dict]], head: dict, video=None) -> None:
    """Process ``source`` (opened as ``video`` when given) and report; raises the error that ended it."""
    from edgecnn.progress import Progress
    from edgecnn.runtime.stream import StreamRunner
    from edgecnn.runtime.video import open_video

    output.check_format(fmt, VIDEO_FORMATS)
    task = predictor.task
    if save is not None and task == "raw":
        raise UsageError("--save on a video draws boxes or classes; a raw model has neither (use --format jsonl)")
    video = video or open_video(source)
    runner = StreamRunner(predictor, video, every=every, max_fps=max_fps)
    typer.echo(video.describe() + (" (live: newest frame first)" if video.live else ""), err=True)
    writer, target, annotate_s = None, None, None
    if save is not None:
        from edgecnn.runtime import draw
        from edgecnn.runtime.video_writer import VideoWriter

        target = save_target(save, source)
        writer, annotate_s = VideoWriter(target, video.width, video.height, video.rate, video.codec), 0.0
    records = _Records(fmt, {**head, "source": source, "width": video.width, "height": video.height,
                             "rate": float(video.rate) if video.rate else None, "codec": video.codec})
    tty = sys.stderr.isatty() and not sys.stdout.isatty()  # records on the terminal: no bar between them
    bar = Progress((video.frame_count or 0) if tty and not video.live else 0, "infer", enabled=tty)
    error: BaseException | None = None
    t0 = time.perf_counter()
    results = runner.run(keep_images=writer is not None)
    try:
        for res in results:
            if writer is not None:
                ta = time.perf_counter()
                writer.write(draw.annotate(res.image, task, res.predictions), res.time)
                annotate_s += time.perf_counter() - ta
            w, h = res.size
            records.write({"frame": res.index, "time": round(res.time, 6), "width": w, "height": h, "task": task,
                           "predictions": relabel(res.predictions)})
            bar.update(1, rate=f"{runner.stats.frames / max(time.perf_counter() - t0, 1e-9):.1f} fps")
    except KeyboardInterrupt as e:
        if not video.live:  # a file stopped early: keep what was done, then stop as Ctrl-C does
            error = e
    except Exception as e:  # kept until the outputs are finished: they hold the frames done so far
        error = e
    finally:
        bar.close()
        results.close()  # stops the reader thread before its container is closed under it
        video.close()
    seconds = time.perf_counter() - t0
    saved = None
    if writer is not None:
        try:
            saved = writer.close()
        except EdgeCNNError as e:
            error = error or e
    s = summary(runner, seconds, predictor.engine.providers[0], annotate_s)
    message = None if error is None else (str(error) if isinstance(error, EdgeCNNError) else type(error).__name__)
    records.close({"summary": s} if message is None else {"summary": s, "error": message})
    typer.echo(summary_line(s, saved, writer), err=True)
    if error is not None:
        raise error
