"""``edgecnn infer PATH...``: classify, detect or report raw outputs on image files, folders or globs,
torch-free.

The work is ``edgecnn.runtime`` (sources -> Predictor -> records); this module parses options,
writes the chosen format to stdout and the progress bar, warnings, per-file errors and the
summary line to stderr. Output keys are documented in the README ("Inference").
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from edgecnn.cli import output
from edgecnn.cli.main import app
from edgecnn.cli.output import check_format
from edgecnn.cli.prep_options import Prep, check_range, prep_options
from edgecnn.errors import EdgeCNNError, UsageError
from edgecnn.tables import table

CSV_HEADER = ("image", "width", "height", "task", "rank", "class", "label", "score", "x1", "y1", "x2", "y2", "error")
RAW_CSV_HEADER = ("image", "width", "height", "task", "output", "shape", "dtype", "min", "max", "mean", "std",
                  "argmax", "error")
RANDOM_LABEL = "random weights"  # a random-init classifier's classes mean nothing: said where they would be


def _record(res, task: str, random_init: bool = False) -> dict:
    w, h = res.size or (None, None)
    preds = res.predictions
    if random_init and task == "classify":
        preds = [{**p, "label": RANDOM_LABEL} for p in preds]
    rec = {"image": str(res.file.path), "width": w, "height": h, "task": task,
           "predictions": preds, "error": res.error}
    if task == "detect" and not res.predictions and not res.error:
        rec["best"] = res.best  # what the model saw below --conf (README, "Output formats and their keys")
    return rec


def _nothing_found(res, conf: float) -> str:
    """The stderr line for a detection without any box: the threshold, and the best score seen."""
    best = res.best
    if best is None:
        return f"{res.file.path}: no detection above conf {conf:g} (no box scored at all)"
    why = "" if best["score"] <= conf else ", but its box fell outside the image"
    return f"{res.file.path}: no detection above conf {conf:g} (best: {best['score']:.4f} '{best['label']}'{why})"


def _dims(shape: list[int]) -> str:
    return "x".join(map(str, shape))


def _csv_rows(rec: dict) -> list[list]:
    head = [rec["image"], rec["width"], rec["height"], rec["task"]]
    if rec["task"] == "raw":
        if not rec["predictions"]:
            return [head + [None] * 8 + [rec["error"]]]
        return [head + [p["output"], _dims(p["shape"]), p["dtype"], p["min"], p["max"], p["mean"], p["std"],
                        None if p["argmax"] is None else _dims(p["argmax"]), None] for p in rec["predictions"]]
    if not rec["predictions"]:
        return [head + [None] * 8 + [rec["error"]]]
    return [head + [i, p["class"], p["label"], p["score"], *(p.get("box") or [None] * 4), None]
            for i, p in enumerate(rec["predictions"], 1)]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _table_block(rec: dict) -> str:
    preds = rec["predictions"]
    noun = {"detect": "detection", "raw": "output"}.get(rec["task"], "prediction")
    title = f"{rec['image']} ({rec['width']}x{rec['height']}): {_count(len(preds), noun)}"
    if not preds:
        return title
    if rec["task"] == "raw":
        def num(v):
            return "" if v is None else f"{v:.4g}"

        rows = [(p["output"], _dims(p["shape"]), p["dtype"], *(num(p[k]) for k in ("min", "max", "mean", "std")),
                 "" if p["argmax"] is None else _dims(p["argmax"])) for p in preds]
        body = table(["output", "shape", "dtype", "min", "max", "mean", "std", "argmax"], rows,
                     right=["min", "max", "mean", "std"])
    elif rec["task"] == "detect":
        rows = [(p["class"], p["label"], f"{p['score']:.4f}", *(f"{v:.1f}" for v in p["box"])) for p in preds]
        body = table(["class", "label", "score", "x1", "y1", "x2", "y2"], rows,
                     right=["class", "score", "x1", "y1", "x2", "y2"])
    else:
        rows = [(p["rank"], p["class"], p["label"], f"{p['score']:.4f}") for p in preds]
        body = table(["rank", "class", "label", "score"], rows, right=["rank", "class", "score"])
    return title + "\n" + "\n".join("  " + line for line in body.splitlines())


class _Table:
    """``--format table``: one block per image as it comes; failures are on stderr already."""

    def write(self, rec: dict) -> None:
        if not rec["error"]:
            typer.echo(_table_block(rec))

    def close(self, tail: dict | None = None) -> None:
        pass


class _Csv(output.CsvStream):
    """``--format csv``: records flattened to one row per prediction, or per output for raw (``_csv_rows``)."""

    def __init__(self, task: str):
        super().__init__(RAW_CSV_HEADER if task == "raw" else CSV_HEADER)

    def write(self, rec: dict) -> None:
        for row in _csv_rows(rec):
            super().write(row)


def _writer(fmt: str, head: dict):
    if fmt == "json":
        return output.JsonStream(head, "results")
    if fmt == "jsonl":
        return output.JsonlStream()
    return _Csv(head["task"]) if fmt == "csv" else _Table()


class _Output:
    """The chosen writer, opened at the first record (or at ``close``), so an error before any result
    leaves stdout empty; ``abort`` closes an opened writer so stdout never holds half a document
    (``json`` then ends with ``"error"`` instead of ``"summary"``)."""

    def __init__(self, fmt: str, head: dict):
        self.fmt, self.head, self.writer = fmt, head, None

    def _open(self):
        if self.writer is None:
            self.writer = _writer(self.fmt, self.head)
        return self.writer

    def write(self, rec: dict) -> None:
        self._open().write(rec)

    def close(self, tail: dict | None = None) -> None:
        self._open().close(tail)

    def abort(self, error: str) -> None:
        if self.writer is None:
            return
        try:
            self.writer.close({"error": error})
        except (OSError, ValueError):  # stdout itself is gone (a closed pipe): nothing more to write
            pass


def _unique(target: Path, taken: set[Path]) -> Path:
    """``target``, or ``stem_1.ext``, ``stem_2.ext``... when this run already wrote ``target`` (the same
    relative path under two folder arguments, or the same file name from two file arguments)."""
    out, n = target, 0
    while out in taken:
        n += 1
        out = target.with_name(f"{target.stem}_{n}{target.suffix}")
    taken.add(out)
    return out


def _save(res, task: str, save: Path, saved: set[Path]) -> None:
    """``--save``: the annotated copy of one image, or for raw its outputs (``raw.save``)."""
    if task == "raw":
        from edgecnn.runtime import raw

        suffix = ".npy" if len(res.arrays) == 1 else ".npz"
        target = _unique((save / res.file.rel).with_suffix(suffix), saved)
        try:
            raw.save(res.arrays, target)
        except OSError as e:
            raise EdgeCNNError(f"cannot write the outputs of {res.file.path} under {save}: {e}") from e
        return
    from edgecnn.runtime import draw  # only with --save (cold start)

    target = _unique(save / res.file.rel, saved)
    try:
        draw.save_image(draw.annotate(res.image, task, res.predictions), target)
    except OSError as e:
        raise EdgeCNNError(f"cannot write the annotated copy of {res.file.path} under {save}: {e}") from e


def _summary(stats, seconds: float, provider: str, runtime: dict | None = None) -> dict:
    per = max(stats.ok, 1)
    return {"images": stats.images, "ok": stats.ok, "failed": stats.failed, "seconds": round(seconds, 4),
            # no speed when nothing was inferred: a rate of failures is not a throughput
            "images_per_s": round(stats.images / seconds, 2) if seconds > 0 and stats.ok else None,
            "ms_per_image": {"decode": round(stats.decode_s / max(stats.images, 1) * 1e3, 3),
                             "inference": round(stats.infer_s / per * 1e3, 3),
                             "postprocess": round(stats.post_s / per * 1e3, 3)},
            "provider": provider, "runtime": runtime}


def _summary_line(summary: dict, batch: int, save: Path | None, task: str = "classify") -> str:
    ms = summary["ms_per_image"]
    if not summary["ok"]:
        return (f"{_count(summary['images'], 'image')}: 0 ok, {summary['failed']} failed in {summary['seconds']:.2f} s "
                "(no image could be read, so no speed to report)")
    line = (f"{_count(summary['images'], 'image')}: {summary['ok']} ok, {summary['failed']} failed "
            f"in {summary['seconds']:.2f} s ({summary['images_per_s'] or 0:.1f} images/s; per image: "
            f"decode+preprocess {ms['decode']:.1f} ms, inference {ms['inference']:.1f} ms, "
            f"postprocess {ms['postprocess']:.2f} ms; {summary['provider']}, batch {batch})")
    if save is None or not summary["ok"]:
        return line
    return line + (f"; outputs as .npy/.npz in {save}/" if task == "raw" else f"; annotated copies in {save}/")


def _video_source(paths: list[str], camera: int | None, every: int, max_fps: float | None, batch: int,
                  fmt: str) -> str | None:
    """The one video, stream or camera this run reads, or None for images (checks the video-only options)."""
    from edgecnn.runtime.stream import check_rates
    from edgecnn.runtime.video import camera_path, kind_of

    if camera is not None:
        check_range("--camera", camera, 0)
        if paths:
            raise UsageError("--camera N reads a camera instead of PATH; give one or the other")
        paths = [camera_path(camera)]
    videos = [p for p in paths if kind_of(p)]
    if not videos:
        if every != 1 or max_fps is not None:
            raise UsageError("--every and --max-fps apply to a video, stream or camera")
        return None
    if len(paths) > 1:
        raise UsageError(f"one video, stream or camera per run ({videos[0]}); images and folders in a run of their own")
    check_rates(every, max_fps)
    from edgecnn.cli.infer_video import VIDEO_FORMATS

    check_format(fmt, VIDEO_FORMATS)
    if batch != 1:
        raise UsageError("--batch applies to images; a video is run frame by frame")
    return videos[0]


@app.command("infer")
@prep_options
def infer_cmd(
    paths: list[str] = typer.Argument(None, help="Image files, folders (recursive) or globs; or one video file, "
                                                 "stream URL (rtsp://, http://...) or camera (/dev/video0).",
                                      show_default=False),
    model: str = typer.Option("mobilenetv2", "--model", "-m",
                              help="A zoo name (meaning export/NAME.onnx) or an ONNX file."),
    topk: int = typer.Option(5, "--topk", "-k", help="Classification: classes to report per image."),
    classes: list[str] = typer.Option(None, "--classes",
                                      help="Keep only these classes: indices or labels, comma-separated."),
    save: Path = typer.Option(None, "--save", help="Write annotated copies of the images to this folder (task raw: "
                                                   "each image's outputs, .npy for one output, .npz for several); "
                                                   "a video: the annotated video, to FILE.mp4 (or .mkv, .avi) or "
                                                   "into this folder."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json, jsonl or csv."),
    runtime: str = typer.Option("ort", "--runtime", help="ort (onnxruntime), openvino (needs [openvino]) or auto "
                                                         "(what 'edgecnn tune' chose for this file on this host; "
                                                         "without a profile: ort)."),
    precision: str = typer.Option(None, "--precision", help="auto (the file of the precision 'edgecnn tune' chose), "
                                                            "fp32 or int8 (the file of that precision beside "
                                                            "--model, e.g. m.int8.onnx), bf16 (the FP32 file in "
                                                            "OpenVINO's bf16, on CPUs with AVX512_BF16/AMX) "
                                                            "[default: --model as given].", show_default=False),
    provider: str = typer.Option("auto", "--provider", help="ort: auto, cpu, cuda or tensorrt."),
    threads: int = typer.Option(None, "--threads", help="Intra-op threads [default: physical cores; auto: the "
                                                        "profile's]."),
    batch: int = typer.Option(1, "--batch", "-b", help="Images per inference call."),
    graph_opt: str = typer.Option(None, "--graph-opt", help="ort graph optimisation: disable, basic, extended, all "
                                                            "[default: all; auto: the profile's].", show_default=False),
    exact_decode: bool = typer.Option(False, "--exact-decode",
                                      help="Decode every image whole, even where the contract says decode: fast "
                                           "(large photos then decode slower; see README, Inference)."),
    camera: int = typer.Option(None, "--camera", help="Read camera N (/dev/videoN, V4L2) instead of PATH."),
    every: int = typer.Option(1, "--every", help="Video: process every Nth frame."),
    max_fps: float = typer.Option(None, "--max-fps", help="Video: process at most this many frames per second "
                                                          "(of the source's time)."),
    prep: Prep = None,
) -> None:
    """Classify or detect objects in images, videos, streams or a camera with an ONNX model, without torch.

    Preprocessing, labels, the task and detection thresholds come from the model's contract (the
    options below override it; a file without one: the task is read from its output shapes, and
    outputs that are neither class vectors nor a known detector head are reported raw: shape, dtype
    and statistics). Files that cannot be read are reported and skipped; the exit code is 1 if any
    failed. A video, stream URL or camera is read frame by frame (table, json or jsonl records per frame;
    --save FILE.mp4 writes the annotated video); a live source keeps only the newest frame.

    Example: edgecnn infer photos/ --model export/mobilenetv2.onnx --topk 3 --format json
    """
    if not paths and camera is None:  # optional only with --camera: the line click prints for a missing argument
        raise UsageError("Missing argument 'PATHS...'; see 'edgecnn infer -h'")
    check_format(fmt, output.RECORD_FORMATS)
    from edgecnn.runtime.choice import check_precision, check_runtime

    check_runtime(runtime)
    check_precision(precision)
    check_range("--topk", topk, 1)
    over = prep.overrides(decode="exact" if exact_decode else None)
    check_range("--batch", batch, 1)
    check_range("--threads", threads, 1)

    from edgecnn.progress import Progress
    from edgecnn.runtime import sources
    from edgecnn.runtime.choice import open_engine
    from edgecnn.runtime.predict import Predictor, resolve_classes
    from edgecnn.runtime.session import resolve_model

    stream = _video_source(paths or [], camera, every, max_fps, batch, fmt)
    video = None
    if stream is not None:
        from edgecnn.runtime.video import open_video

        video = open_video(stream)  # a missing file, a stream that does not answer: before the model loads
    else:
        roots = sources.expand(paths or [])  # bad paths fail before the model loads
    engine = open_engine(resolve_model(model), runtime, precision,
                         objective="latency" if batch == 1 else "throughput",
                         provider=provider, threads=threads, graph_opt=graph_opt, overrides=over)
    if "auto" in (runtime, precision):
        typer.echo(engine.resolved.line(), err=True)
    task = engine.task
    allowed = resolve_classes(classes, engine.contract.labels) if classes else None
    predictor = Predictor(engine, topk=topk, conf=over.conf, iou=over.iou, max_det=over.max_det,
                          classes=allowed)  # checks them
    for w in engine.warnings:
        typer.echo(f"Warning: {w}", err=True)
    random_init = engine.contract.random_init
    if random_init:
        typer.echo(f'Warning: {engine.path} holds random-init weights (contract "weights": "random-init"); '
                   "its predictions are meaningless", err=True)

    head = {"model": str(engine.path), "task": task, "contract": "graph" if engine.from_graph else "file"}
    if video is not None:
        from edgecnn.cli import infer_video

        def relabel(preds: list[dict]) -> list[dict]:
            return [{**p, "label": RANDOM_LABEL} for p in preds] if random_init and task == "classify" else preds

        infer_video.run(stream, predictor, fmt=fmt, save=save, every=every, max_fps=max_fps, relabel=relabel,
                        head=head, video=video)
        return
    writer = _Output(fmt, head)
    tty, out_tty = sys.stderr.isatty(), sys.stdout.isatty()
    bar = Progress(sources.count_images(roots, save) if tty else 0, "infer", enabled=tty)
    t0 = time.perf_counter()
    files = sources.iter_images(roots, exclude=save)  # never annotate our own annotated copies
    saved: set[Path] = set()
    try:
        one = len(roots) == 1 and not roots[0].is_dir  # one file: nothing to decode ahead of
        for res in predictor.predict(files, batch=batch, keep_images=save is not None, workers=0 if one else None):
            empty = task == "detect" and not res.error and not res.predictions
            if res.error or out_tty or empty:
                bar.close()  # clear the bar's line before printing to the terminal; the next update redraws it
            if res.error:
                typer.echo(f"Error: {res.error}", err=True)
            else:
                if empty:
                    conf = predictor.detection.conf if over.conf is None else over.conf
                    typer.echo(_nothing_found(res, conf), err=True)
                if save is not None:  # an image without detections is saved too: the user sees it was looked at
                    _save(res, task, save, saved)
            writer.write(_record(res, task, random_init))
            bar.update(1, rate=f"{predictor.stats.images / max(time.perf_counter() - t0, 1e-9):.1f} img/s")
    except BaseException as e:  # an error, Ctrl-C: close what stdout holds so it stays a whole document
        bar.close()
        writer.abort(str(e) if isinstance(e, EdgeCNNError) else type(e).__name__)
        raise
    bar.close()
    seconds = time.perf_counter() - t0
    summary = _summary(predictor.stats, seconds, engine.providers[0], engine.resolved.describe())
    writer.close({"summary": summary})
    typer.echo(_summary_line(summary, batch, save, task), err=True)
    if predictor.stats.failed:
        raise typer.Exit(1)
