"""End-to-end mode (``--image FILE|FOLDER``): decode, preprocess, inference and postprocess of real image
files, each stage timed, through the torch-free runtime (``edgecnn.runtime``: the same code ``edgecnn
infer`` runs). The postprocess is the task's: softmax + top-k for a classifier, decoding + NMS for a
detector (any layout, YOLO included), the per-output statistics ``infer`` prints for ``raw``.
The total is the time of the whole call; the stages add up to it minus a few microseconds of bookkeeping.

One call processes ``batch`` images (cycling through the files): each is decoded and preprocessed,
the batch is stacked and run, and the outputs are post-processed into predictions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgecnn.bench.targets import BenchError
from edgecnn.runtime.image import ImageError, load_image, preprocess
from edgecnn.runtime.sources import SourceError, collect_images

STAGES = ("decode", "preprocess", "inference", "postprocess")
MAX_IMAGES = 64  # the files cycled through; more add no information to a latency figure


def find_images(paths: Sequence[str | Path]) -> list[Path]:
    """The image files of ``--image`` (files or folders), at most ``MAX_IMAGES``, each decodable."""
    try:
        files = collect_images(list(paths))[:MAX_IMAGES]
    except SourceError as e:
        raise BenchError(f"--image: {e}") from e
    good, bad = [], []
    for f in files:
        try:
            load_image(f)
            good.append(f)
        except ImageError as e:
            bad.append(str(e))
    if not good:
        raise BenchError(f"--image: no decodable image ({bad[0] if bad else 'no files'})")
    return good


class Pipeline:
    """The callable the protocol times for one configuration; ``samples[stage]`` holds each call's
    stage times in nanoseconds."""

    def __init__(self, runner, engine, images: list[Path], batch: int):
        from edgecnn.runtime.predict import Predictor

        self.runner, self.images, self.batch = runner, images, batch
        self.spec = engine.contract.preprocess
        self.predictor = Predictor(engine, topk=5)
        self.samples: dict[str, list[int]] = {s: [] for s in STAGES}
        self.predictions: list = []
        self._i = 0

    def __call__(self) -> None:
        t = [0, 0, 0, 0]
        xs, geoms = [], []
        for _ in range(self.batch):
            path = self.images[self._i % len(self.images)]
            self._i += 1
            t0 = time.perf_counter_ns()
            im = load_image(path, self.spec)  # the contract's decode (fast|exact), as infer does
            t1 = time.perf_counter_ns()
            x, geom = preprocess(im, self.spec)
            t2 = time.perf_counter_ns()
            t[0] += t1 - t0
            t[1] += t2 - t1
            xs.append(x)
            geoms.append(geom)
        t2 = time.perf_counter_ns()
        outputs = self.runner.run_numpy(np.stack(xs))
        t3 = time.perf_counter_ns()
        self.predictions = self.predictor.postprocess(outputs, geoms)
        t4 = time.perf_counter_ns()
        t[2], t[3] = t3 - t2, t4 - t3
        for stage, dt in zip(STAGES, t, strict=True):
            self.samples[stage].append(dt)

    def reset(self) -> None:
        """Forget warm-up calls (the protocol times only what follows)."""
        for v in self.samples.values():
            v.clear()
