"""``bench --video FILE``: end-to-end frames/s of a video file through ``infer``'s frame loop
(``edgecnn.runtime.stream``: PyAV decode, the contract's preprocessing, the model, the task's
postprocess), and the stage split, for each model. No torch.

Each model runs the clip in two modes, interleaved in blocks (inline, ahead, ahead, inline, ...):
``inline`` decodes each frame and then runs the model on it (one thread: the sum of the stages),
``ahead`` decodes on a second thread while the model runs (what ``infer`` does: the slower side sets
the pace). Each mode's row gives the median over its passes of the measured frames/s, of what its stage
split predicts, and of the per-frame milliseconds of each stage.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from edgecnn.bench.targets import BenchError
from edgecnn.runtime.stream import STAGES

MODES = ("inline", "ahead")


def check_video(path: str) -> str:
    """``--video``: the file must open and hold a video stream (a one-line BenchError otherwise)."""
    from edgecnn.runtime.video import VideoError, open_video

    try:
        open_video(path).close()
    except VideoError as e:
        raise BenchError(f"--video: {e}") from e
    return path


def _pass(predictor, path: str, ahead: bool, frames: int | None) -> dict:
    from edgecnn.runtime.stream import StreamRunner
    from edgecnn.runtime.video import open_video

    video = open_video(path)
    runner = StreamRunner(predictor, video, ahead=ahead)
    t0 = time.perf_counter()
    results = runner.run()
    for res in results:
        if frames is not None and res.index + 1 >= frames:
            break
    seconds = time.perf_counter() - t0
    results.close()  # the reader thread stops before the container closes
    video.close()
    st = runner.stats
    return {"frames": st.frames, "fps": st.frames / seconds, "predicted": st.predicted_fps(ahead=ahead),
            "ms": st.ms_per_frame()}


def measure(model: str | Path, path: str, *, provider: str = "auto", threads: int | None = None,
            rounds: int = 2, frames: int | None = None) -> list[dict]:
    """One row per mode for ``model`` on the video ``path`` (at most ``frames`` frames per pass)."""
    from edgecnn.runtime.predict import Predictor
    from edgecnn.runtime.session import Engine

    engine = Engine(model, provider=provider, threads=threads)
    predictor = Predictor(engine)
    _pass(predictor, path, True, 3)  # warm-up: the session's first runs and the decoder's start-up
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    for r in range(rounds):
        for mode in (MODES if r % 2 == 0 else MODES[::-1]):
            time.sleep(0.05)  # let the previous block's thread pools settle
            runs[mode].append(_pass(predictor, path, mode == "ahead", frames))
    rows = []
    for mode, passes in runs.items():
        rows.append({"model": str(model), "mode": mode, "frames": passes[0]["frames"], "passes": len(passes),
                     "fps": round(statistics.median(p["fps"] for p in passes), 2),
                     "fps_predicted": round(statistics.median(p["predicted"] or 0 for p in passes), 2),
                     "ms_per_frame": {s: round(statistics.median(p["ms"][s] for p in passes), 3) for s in STAGES},
                     "provider": engine.providers[0], "threads": threads})
    return rows


def table(rows: list[dict]) -> str:
    from edgecnn.tables import table as render

    head = ["model", "mode", "frames", "frames/s", "predicted", *(f"{s} ms" for s in STAGES)]
    body = [(Path(r["model"]).name, r["mode"], r["frames"], f"{r['fps']:.1f}", f"{r['fps_predicted']:.1f}",
             *(f"{r['ms_per_frame'][s]:.2f}" for s in STAGES)) for r in rows]
    return render(head, body, right=head[2:])
