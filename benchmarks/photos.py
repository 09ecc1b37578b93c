"""Benchmark images made from real photographs (shared by the preprocessing, folder and cold-start benchmarks).

No network: ``--photos`` is a folder of real JPEG/PNG photos, e.g. matplotlib's
``mpl-data/sample_data/grace_hopper.jpg`` and scikit-image's ``skimage/data/{astronaut,chelsea,coffee,
motorcycle_left,...}.png``, which ``pip download --no-deps matplotlib scikit-image`` fetches as wheels
to unzip, without installing them. Sizes a photo does not have are made by a bicubic upscale and a
crop; "phone" sizes (4032x3024) also get a mild sensor-like grain (Gaussian, sigma 3 levels) so that a
JPEG has a real phone photo's size and entropy-decoding cost (about 2 MB): an upscaled photo alone
is smoother than a camera's.
"""

from __future__ import annotations

from pathlib import Path


def load_photos(folder: Path, min_side: int = 300) -> list:
    """The colour photos of ``folder`` (JPEG/PNG, sorted by name) at least ``min_side`` on their shorter side."""
    from PIL import Image

    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    ims = [Image.open(p).convert("RGB") for p in paths]
    ims = [im for im in ims if min(im.size) >= min_side]
    if not ims:
        raise SystemExit(f"--photos {folder}: no JPEG/PNG photo of at least {min_side} px on its shorter side")
    return ims


def make(im, size: tuple[int, int], grain: float = 0.0, seed: int = 0, zoom: float = 1.0):
    """``im`` scaled to cover ``size`` (times ``zoom``), a crop of ``size`` (random with ``zoom`` > 1,
    else centred), plus Gaussian grain of ``grain`` levels."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    s = max(w / im.width, h / im.height) * (rng.uniform(1.0, zoom) if zoom > 1 else 1.0)
    r = im.resize((max(w, round(im.width * s)), max(h, round(im.height * s))), Image.Resampling.BICUBIC)
    if zoom > 1:
        left, top = int(rng.integers(0, r.width - w + 1)), int(rng.integers(0, r.height - h + 1))
    else:
        left, top = (r.width - w) // 2, (r.height - h) // 2
    r = r.crop((left, top, left + w, top + h))
    if grain:
        a = np.asarray(r, dtype=np.float32) + rng.normal(0, grain, (h, w, 3)).astype(np.float32)
        r = Image.fromarray(a.clip(0, 255).round().astype(np.uint8))
    return r


def folder(photos: Path, out: Path, n: int, size: tuple[int, int], grain: float = 0.0, quality: int = 90) -> Path:
    """``n`` JPEGs of ``size`` in ``out`` (made once; an existing complete folder is reused): random
    crops (up to 1.3x zoom) of the photos in turn."""
    out.mkdir(parents=True, exist_ok=True)
    if len(list(out.glob("*.jpg"))) == n:
        return out
    ims = load_photos(photos)
    for i in range(n):
        make(ims[i % len(ims)], size, grain, seed=i, zoom=1.3).save(out / f"img_{i:05d}.jpg", quality=quality)
    return out
