"""Data sources: IDX files (plain and gzip), ImageFolder layouts and bad inputs, the shapes generator,
the MNIST download (never over the network here). No torch needed."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecnn.fileio import sha256
from edgecnn.train.datasets import (
    MNIST_FILES,
    DataError,
    download_mnist,
    find_mnist,
    open_data,
    read_idx,
    write_idx,
)
from tests.conftest import run_cli


def _digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_roundtrip(tmp_path, suffix):
    x, y = _digits(30)
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", x)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", y)
    raw = (tmp_path / f"train-images-idx3-ubyte{suffix}").read_bytes()
    assert raw[:2] == (b"\x1f\x8b" if suffix else b"\x00\x00")
    if not suffix:  # the IDX header itself: magic 0x00000803, then big-endian dims
        assert raw[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 30, 0, 0, 0, 28, 0, 0, 0, 28])
    assert np.array_equal(read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}"), x)
    assert np.array_equal(read_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}"), y)
    f32 = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    write_idx(tmp_path / "f.idx", f32)
    assert np.array_equal(read_idx(tmp_path / "f.idx"), f32)


def test_idx_source_uses_t10k_as_validation(tmp_path):
    x, y = _digits(40)
    vx, vy = _digits(20, seed=1)
    write_idx(tmp_path / "train-images.idx3-ubyte", x)  # the Kaggle spelling
    write_idx(tmp_path / "train-labels.idx1-ubyte", y)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", vx)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", vy)
    assert set(find_mnist(tmp_path)) == {"train-images", "train-labels", "t10k-images", "t10k-labels"}
    data = open_data(str(tmp_path))
    assert data.kind == "mnist" and data.classes == [str(i) for i in range(10)]
    assert (len(data.train), len(data.val)) == (40, 20)
    assert np.array_equal(data.val.items[3], vx[3]) and data.val.targets[3] == int(vy[3])


def test_idx_without_t10k_holds_out_a_stratified_split(tmp_path):
    x, y = _digits(100)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", x)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", y)
    data = open_data(str(tmp_path), val_split=0.3, seed=5)
    assert (len(data.train), len(data.val)) == (70, 30)
    assert data.val.counts(10) == [3] * 10
    again = open_data(str(tmp_path), val_split=0.3, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(data.val.items, again.val.items, strict=True))


def test_idx_bad_files(tmp_path):
    (tmp_path / "a.idx").write_bytes(b"\x89PNG....")
    with pytest.raises(DataError, match=r"a.idx: not an IDX file \(magic bytes 89504e47\)"):
        read_idx(tmp_path / "a.idx")
    write_idx(tmp_path / "b.idx", np.zeros((4, 5, 5), np.uint8))
    (tmp_path / "b.idx").write_bytes((tmp_path / "b.idx").read_bytes()[:-7])
    with pytest.raises(DataError, match=r"b.idx: the IDX header promises 4x5x5 \(100 bytes\) but the file holds 93"):
        read_idx(tmp_path / "b.idx")


def _folder(root: Path, counts: dict[str, int], size: int = 12) -> None:
    for i, (cls, n) in enumerate(counts.items()):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for j in range(n):
            Image.new("RGB", (size, size), (40 * i, 10 * j, 99)).save(root / cls / f"{j}.png")


def test_imagefolder_with_train_and_val(tmp_path):
    _folder(tmp_path / "train", {"cat": 3, "dog": 4})
    _folder(tmp_path / "val", {"cat": 1, "dog": 2})
    (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image, not counted")
    data = open_data(str(tmp_path))
    assert data.classes == ["cat", "dog"] and (len(data.train), len(data.val)) == (7, 3)
    assert data.train.targets == [0, 0, 0, 1, 1, 1, 1] and not data.skipped


def test_imagefolder_single_folder_holds_out_val(tmp_path):
    _folder(tmp_path, {"a": 10, "b": 10})
    data = open_data(str(tmp_path))  # default 20%
    assert (len(data.train), len(data.val)) == (16, 4) and data.val.counts(2) == [2, 2]
    assert "holding out 20% of each class" in data.notes[0]


def test_empty_class_folder_is_an_error(tmp_path):
    _folder(tmp_path / "train", {"cat": 3, "dog": 3})
    (tmp_path / "train" / "emu").mkdir()
    with pytest.raises(DataError) as e:
        open_data(str(tmp_path))
    assert str(e.value) == (f"class folder {tmp_path / 'train' / 'emu'} has no images "
                            "(.jpg, .jpeg, .png, .bmp, .gif, .webp, .tif, .tiff); add images or remove the folder")


def test_single_class_is_an_error(tmp_path):
    _folder(tmp_path, {"cat": 5})
    with pytest.raises(DataError) as e:
        open_data(str(tmp_path))
    assert str(e.value) == f"{tmp_path} has a single class folder ('cat'); a classifier needs at least 2 classes"


def test_unreadable_images_are_skipped_and_counted(tmp_path):
    _folder(tmp_path / "train", {"a": 3, "b": 3})
    _folder(tmp_path / "val", {"a": 1, "b": 1})
    (tmp_path / "train" / "a" / "bad.jpg").write_text("this is not a JPEG")
    (tmp_path / "train" / "b" / "empty.png").write_bytes(b"")
    data = open_data(str(tmp_path))
    assert len(data.train) == 6
    assert sorted((Path(p).name, why) for p, why in data.skipped) == [
        ("bad.jpg", "not a readable image (UnidentifiedImageError)"), ("empty.png", "empty file")]


def test_a_class_of_only_unreadable_images_is_an_error(tmp_path):
    _folder(tmp_path, {"a": 3})
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.png").write_text("garbage")
    with pytest.raises(DataError, match=r"class folder .*b has no readable images"):
        open_data(str(tmp_path))


def test_missing_source():
    with pytest.raises(DataError, match=r"--data no/such/dir: no such directory"):
        open_data("no/such/dir")


def test_builtin_shapes_source():
    data = open_data("shapes:40", seed=2)
    assert data.classes == ["circle", "triangle", "square", "star"]
    assert (len(data.train), len(data.val)) == (32, 8) and data.val.counts(4) == [2, 2, 2, 2]


# ------------------------------------------------------------------------------------------- CLI


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def test_data_shapes_is_deterministic_from_seed(tmp_path, cli):
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        r = cli("data", "shapes", "--out", str(tmp_path / name), "--n", "20", "--size", "32", "--seed", seed)
        assert r.exit_code == 0, r.output
    assert r.stdout == (f"wrote 20 32x32 images (16 train / 4 val, ImageFolder), classes circle, triangle, square, "
                        f"star, seed 4 -> {tmp_path / 'c'}\n")
    a, b, c = (_tree_digest(tmp_path / n) for n in "abc")
    assert a == b and len(a) == 20
    assert a.keys() == c.keys() and all(a[k] != c[k] for k in a)
    assert sorted({Path(k).parts[1] for k in a}) == ["circle", "square", "star", "triangle"]


def test_data_shapes_detect_writes_coco(tmp_path, cli):
    r = cli("data", "shapes", "--out", str(tmp_path / "det"), "--n", "10", "--size", "64", "--task", "detect")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "det" / "annotations" / "instances_train.json").read_text())
    assert [c["name"] for c in doc["categories"]] == ["circle", "triangle", "square", "star"]
    assert len(doc["images"]) == 8 and all((tmp_path / "det" / "train" / im["file_name"]).is_file()
                                           for im in doc["images"])
    for ann in doc["annotations"]:
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 64 and y + h <= 64 and 0 < ann["area"] <= w * h + 1e-6


def test_detect_style_sets_count_size_background_and_hues():
    import colorsys

    from edgecnn.train.shapes import CLASS_HUES, DetectStyle, detect_sample

    style = DetectStyle(most=2, radius=(0.2, 0.3), backgrounds=("gradient",), class_hues=True)
    counts = set()
    for i in range(30):
        im, objects = detect_sample(5, i, 64, style)
        counts.add(len(objects))
        a = np.asarray(im, dtype=np.float32)
        free = np.ones((64, 64), bool)
        for o in objects:
            x, y, w, h = (round(v) for v in o["bbox"])
            free[max(y - 1, 0):y + h + 1, max(x - 1, 0):x + w + 1] = False
        yy, xx = np.nonzero(free)
        design = np.stack([xx, yy, np.ones_like(xx)], 1).astype(np.float32)
        resid = a[free] - design @ np.linalg.lstsq(design, a[free], rcond=None)[0]
        assert resid.std() < 7  # a plain gradient and its fine noise (sd 4): no stripes, checks or coarse grain
        for o in objects:
            x, y, w, h = o["bbox"]
            assert 1.5 * 0.2 * 64 - 1 <= max(w, h) <= 2 * 0.3 * 64 + 1  # radius 0.2-0.3 (a triangle spans 1.5 r)
            cy, cx = int(y + h / 2), int(x + w / 2)
            hue = colorsys.rgb_to_hsv(*(a[cy, cx] / 255))[0]  # the centre pixel is the shape's (convex or star core)
            assert min(abs(hue - CLASS_HUES[o["category"]]), 1 - abs(hue - CLASS_HUES[o["category"]])) < 0.05
    assert counts == {1, 2}


def test_data_shapes_refuses_a_non_empty_folder(tmp_path, cli):
    (tmp_path / "keep.txt").write_text("precious")
    r = cli("data", "shapes", "--out", str(tmp_path), "--n", "4")
    assert r.exit_code == 1
    assert r.stderr == f"Error: {tmp_path} already exists and is not empty; choose another --out or remove it\n"
    assert (tmp_path / "keep.txt").read_text() == "precious"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_data_mnist_offline_is_one_line(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/mnist/"
    r = run_cli("data", "mnist", "--out", str(tmp_path / "m"), "--mirror", url, "--timeout", "5")
    assert r.returncode == 1
    assert len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith(f"Error: could not download MNIST ({url}train-images-idx3-ubyte.gz: ")
    assert r.stderr.rstrip().endswith(f"into {tmp_path / 'm'} yourself")
    assert not (tmp_path / "m").exists()


def test_mnist_download_from_a_file_mirror(tmp_path):
    """The success path, from a local file:// mirror of zero-filled files of the real shapes."""
    mirror = tmp_path / "mirror"
    for name, shape in MNIST_FILES.items():
        write_idx(mirror / name, np.zeros(shape, np.uint8))
    seen = []
    paths = download_mnist(tmp_path / "out", [mirror.as_uri() + "/"], on_file=lambda n, s: seen.append(n))
    assert [p.name for p in paths] == list(MNIST_FILES) == seen
    assert read_idx(tmp_path / "out" / "t10k-images-idx3-ubyte.gz").shape == (10000, 28, 28)
    again = []
    download_mnist(tmp_path / "out", ["http://127.0.0.1:1/"], on_file=lambda n, s: again.append(s))
    assert again == ["present"] * 4  # valid files are kept, the (dead) mirror is not asked
