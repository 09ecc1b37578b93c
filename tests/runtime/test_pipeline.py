"""Decode ahead: input order, bad files in place, bounded memory, early close; the Predictor through it."""

import random
import threading
import time
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from edgecnn.runtime.pipeline import decode_workers, ordered_map
from edgecnn.runtime.predict import Predictor
from edgecnn.runtime.session import Engine
from edgecnn.runtime.sources import expand, iter_images
from tests import imagegen, onnx_models


class Bad(Exception):
    pass


def slow_square(i: int) -> int:
    time.sleep(random.Random(i).uniform(0, 0.004))  # later items often finish first
    if i % 5 == 3:
        raise Bad(f"item {i}")
    return i * i


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_results_keep_input_order_with_failures_in_place(workers):
    out = list(ordered_map(slow_square, range(40), workers, depth=4, expected=(Bad,)))
    assert [i for i, _ in out] == list(range(40))
    for i, r in out:
        if i % 5 == 3:
            assert isinstance(r, Bad) and str(r) == f"item {i}"
        else:
            assert r == i * i


def test_an_unexpected_error_is_raised_at_its_turn():
    def load(i):
        if i == 6:
            raise KeyError("boom")
        return i

    seen = []
    with pytest.raises(KeyError, match="boom"):
        for i, _ in ordered_map(load, range(20), 2, depth=3):
            seen.append(i)
    assert seen == list(range(6))


@pytest.mark.parametrize("depth", [1, 3, 8])
def test_at_most_depth_items_are_loaded_and_not_yet_taken(depth):
    lock, started, taken, worst = threading.Lock(), [0], [0], [0]

    def load(i):
        with lock:
            started[0] += 1
            worst[0] = max(worst[0], started[0] - taken[0])
        return i

    for _ in ordered_map(load, range(200), workers=3, depth=depth):
        time.sleep(0.0005)  # a slow consumer: the pool would run far ahead if nothing bounded it
        with lock:
            taken[0] += 1
    assert worst[0] <= depth


def test_closing_early_stops_loading():
    started = []
    it = ordered_map(lambda i: started.append(i) or i, range(10_000), workers=2, depth=4)
    assert [next(it)[0] for _ in range(3)] == [0, 1, 2]
    it.close()
    assert len(started) <= 3 + 4


def test_decode_workers_leave_a_core_for_the_model():
    assert decode_workers(1) == 1 and decode_workers(2) == 1 and decode_workers(8) == 7


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    """A folder of 60 red/green/blue images with a bad file every 7th, and the colour model."""
    d = tmp_path_factory.mktemp("folder")
    expected = {}
    for i in range(60):
        p = d / f"{i:03d}.png"
        if i % 7 == 4:
            (p if i % 2 else p.with_suffix(".jpg")).write_bytes(b"not an image")
            expected[(p if i % 2 else p.with_suffix(".jpg")).name] = None
            continue
        c = ("red", "green", "blue")[i % 3]
        Image.new("RGB", (40 + i, 30), {"red": (220, 10, 10), "green": (10, 220, 10), "blue": (10, 10, 220)}[c]).save(p)
        expected[p.name] = c
    return d, expected, onnx_models.classifier(d.parent / "colors.onnx")


@pytest.mark.parametrize("workers, batch", [(0, 1), (1, 1), (2, 4), (3, 7)])
def test_folder_results_in_input_order_with_bad_files_mixed_in(colours, workers, batch):
    folder, expected, model = colours
    pred = Predictor(Engine(model, threads=1), topk=1)
    results = list(pred.predict(iter_images(expand([folder])), batch=batch, workers=workers))
    assert [r.file.path.name for r in results] == sorted(expected)
    for r in results:
        want = expected[r.file.path.name]
        if want is None:
            assert r.error and r.error.startswith(str(r.file.path)) and not r.predictions
        else:
            assert r.error is None and r.predictions[0]["label"] == want
    assert pred.stats.ok == sum(v is not None for v in expected.values())
    assert pred.stats.failed == sum(v is None for v in expected.values())


def test_memory_stays_bounded_over_a_folder_of_hundreds_of_images(tmp_path):
    """300 images whose tensors take 49 KB each (64x64x3 float32): holding them all would take 14.7 MB;
    decoding ahead holds a few batches."""
    for i in range(300):
        imagegen.save(Image.new("RGB", (80, 64), (i % 256, 40, 200)), tmp_path / f"{i:03d}.bmp")
    model = onnx_models.classifier(tmp_path.parent / f"{tmp_path.name}.onnx", size=64)
    pred = Predictor(Engine(model, threads=1), topk=1)
    tracemalloc.start()
    try:
        n = 0
        for r in pred.predict(iter_images(expand([tmp_path])), batch=4, workers=2):
            assert r.error is None
            n += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 300
    assert peak < 3_000_000, peak  # (2 * 4 + 2) in flight + a batch of 4: ~0.7 MB of tensors


def test_keep_images_gives_the_whole_image_after_a_reduced_decode(tmp_path):
    p = tmp_path / "big.jpg"
    Image.fromarray(np.full((300, 400, 3), 200, np.uint8)).save(p)
    model = onnx_models.classifier(tmp_path / "m.onnx")  # 32 px input: 300 px is reduced 1/4
    pred = Predictor(Engine(model, threads=1), topk=1)
    (r,) = pred.predict(iter_images(expand([p])), keep_images=True)
    assert r.image.size == (400, 300) and r.size == (400, 300)
