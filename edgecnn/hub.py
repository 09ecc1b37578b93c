"""Published weights: resolve ``--weights imagenet`` (a classifier) or ``--weights coco`` (a detector) to a
model card's checkpoint, find it in a
cache or download it, and check its hash. No torch (loading the file is ``edgecnn.weights``).

Where a file is looked for, in order:
  1. edgecnn's cache: ``$EDGECNN_HOME/checkpoints/`` (default ``~/.cache/edgecnn/checkpoints/``);
  2. torch hub's cache, used in place, never copied: ``$TORCH_HOME/hub/checkpoints/`` (default
     ``$XDG_CACHE_HOME/torch`` or ``~/.cache/torch``), where torchvision keeps what it downloaded;
  3. the URL on the card, downloaded into edgecnn's cache with a progress bar (stderr, terminal only);
     ``$EDGECNN_WEIGHTS_MIRROR`` (a base URL) replaces download.pytorch.org/models/ for a local mirror.

The hash check. torchvision publishes no full SHA-256, only its first hex digits in the file name
(``resnet18-f37072fd.pth``: the file's SHA-256 starts with ``f37072fd``). A file is accepted when its
SHA-256 starts with that prefix -- the same rule as ``torch.hub``'s ``check_hash``. Eight hex digits
catch a truncated, corrupted or wrong file (a random file passes with odds of 1 in 4 billion); they are
not a defence against a file crafted to match. That is why loading stays ``torch.load(weights_only=True)``
(tensors only, never code) and why the export records the file's full SHA-256 in the contract, so two
exports can be compared exactly.

A download is written to a ``.<file>.*.part`` file beside the target, checked, then renamed: an interrupted or
failed download never leaves a file under the checkpoint's name, so nothing half-written is ever taken
for a checkpoint later. Offline, behind a proxy that refuses, or on any HTTP error: one line naming the
URL and how to pass the file by hand (``--weights FILE.pth``) or where to put it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from edgecnn.errors import EdgeCNNError, UsageError, first_line
from edgecnn.fileio import sha256, umask
from edgecnn.progress import Progress
from edgecnn.registry import REGISTRY, ModelCard, Pretrained

# "imagenet"/"coco": the card's first weights of that dataset (torchvision's DEFAULT); the others name one
TAGS = ("imagenet", "imagenet1k_v1", "imagenet1k_v2", "coco", "coco_v1")
DATASETS = {"imagenet": "ImageNet", "coco": "COCO"}


class HubError(EdgeCNNError):
    """Published weights that cannot be found, downloaded or verified."""


def is_tag(weights: str | None) -> bool:
    """True when ``--weights``/``--init`` names published weights rather than a file."""
    return weights is not None and weights.lower() in TAGS


def dataset(tag: str) -> str:
    """``ImageNet`` or ``COCO``: the data set a tag names weights of."""
    tag = tag.lower()
    return DATASETS.get(tag) or ("COCO" if tag.startswith("coco") else "ImageNet")


def resolve(card: ModelCard, tag: str, option: str = "--weights") -> Pretrained:
    """The card's published weights named by ``tag`` (``imagenet``/``coco`` = the first of that dataset,
    torchvision's default). ``option`` is the command's option (named in the refusal)."""
    tag = tag.lower()
    wanted = dataset(tag)
    mine = [p for p in card.pretrained if p.dataset == wanted]
    if not mine:
        have = [n for n, c in REGISTRY.items() if any(p.dataset == wanted for p in c.pretrained)]
        other = sorted({p.dataset for p in card.pretrained})
        instead = f"; it has {other[0]} weights: {option} {other[0].lower()}" if other else ""
        raise UsageError(f"{card.name} has no published {wanted} weights (only torchvision-layout models do: "
                         f"{', '.join(have)}){instead}; or pass a file with {option}")
    if tag in DATASETS:
        return mine[0]
    for p in mine:
        if p.tag == tag:
            return p
    short = wanted.lower()
    raise UsageError(f"{card.name} has no '{tag}' weights; it has: {short} (= {mine[0].tag}), "
                     f"{', '.join(p.tag for p in mine)}")


def match_file(card: ModelCard, path: str | Path) -> Pretrained | None:
    """The published weights a local file is, judged by its torchvision file name (``resnet18-f37072fd.pth``),
    so a checkpoint fetched by hand gets the same labels and preprocessing as ``--weights imagenet``/``coco``."""
    name = Path(path).name
    return next((p for p in card.pretrained if p.filename == name), None)


def home() -> Path:
    """edgecnn's cache folder: ``$EDGECNN_HOME`` or ``~/.cache/edgecnn``."""
    return Path(os.environ.get("EDGECNN_HOME") or Path.home() / ".cache" / "edgecnn").expanduser()


def torch_hub_checkpoints() -> Path:
    """Where ``torch.hub`` (and so torchvision) keeps downloaded checkpoints, computed as torch does."""
    torch_home = os.environ.get("TORCH_HOME") or \
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "torch"
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


def hash_ok(path: Path, prefix: str) -> tuple[bool, str]:
    """(whether the SHA-256 of ``path`` starts with ``prefix``, the full hex digest)."""
    digest = sha256(path)
    return digest.startswith(prefix), digest


@dataclass
class Fetched:
    path: Path
    sha256: str
    source: str  # "cache" | "torch-hub-cache" | "download"


def fetch(p: Pretrained, timeout: float = 30.0, progress: bool | None = None, option: str = "--weights") -> Fetched:
    """The checkpoint file of ``p``: from a cache when a copy with the right hash is there, else
    downloaded (atomically, hash-checked) into edgecnn's cache. ``option`` is the command's option that
    takes a file instead (named in the offline error)."""
    target = home() / "checkpoints" / p.filename
    for path, source in ((target, "cache"), (torch_hub_checkpoints() / p.filename, "torch-hub-cache")):
        if path.is_file():
            ok, digest = hash_ok(path, p.sha256_prefix)
            if ok:
                return Fetched(path, digest, source)
            if source == "cache":  # ours and wrong (e.g. replaced by hand): download it again
                path.unlink()
    digest = download(url(p), target, p.sha256_prefix, timeout, progress, option)
    return Fetched(target, digest, "download")


def url(p: Pretrained) -> str:
    """Where ``p`` is downloaded from: the card's URL, or the same file name under ``$EDGECNN_WEIGHTS_MIRROR``."""
    mirror = os.environ.get("EDGECNN_WEIGHTS_MIRROR")
    return f"{mirror.rstrip('/')}/{p.filename}" if mirror else p.url


def download(url: str, target: Path, sha256_prefix: str, timeout: float = 30.0,
             progress: bool | None = None, option: str = "--weights") -> str:
    """Download ``url`` to ``target`` through ``<target>.part``; the file appears under its name only
    complete and with a SHA-256 starting with ``sha256_prefix``. Returns the full digest."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HubError(f"cannot create the weights cache {target.parent}: {e.strerror or first_line(e)}; "
                       "set EDGECNN_HOME to a writable folder") from e
    # a .part name of its own: two processes (DDP ranks) fetching at once never write into one file
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    part = Path(tmp)
    hint = (f"offline or behind a proxy? download {url} by other means and pass it with {option} "
            f"{target.name} (or put it at {target})")
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0)
            got = 0
            with Progress(total, f"downloading {target.name}", enabled=progress) as bar:
                while block := response.read(1 << 16):
                    f.write(block)
                    h.update(block)
                    got += len(block)
                    bar.update(len(block))
            if total and got != total:
                raise HubError(f"could not download {url}: the transfer stopped after {got:,} of {total:,} bytes; "
                               f"try again, or {hint}")
    except HubError:
        _remove(part)
        raise
    except http.client.IncompleteRead as e:
        _remove(part)
        raise HubError(f"could not download {url}: the transfer stopped after {len(e.partial):,} bytes "
                       f"of a block; try again, or {hint}") from e
    except urllib.error.HTTPError as e:
        _remove(part)
        raise HubError(f"could not download {url}: HTTP {e.code} {e.reason}; {hint}") from e
    except (urllib.error.URLError, OSError, ValueError) as e:
        _remove(part)
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or first_line(e)
        raise HubError(f"could not download {url} ({reason}); {hint}") from e
    except BaseException:  # Ctrl-C included: no .part left to be mistaken for anything
        _remove(part)
        raise
    digest = h.hexdigest()
    if not digest.startswith(sha256_prefix):
        _remove(part)
        raise HubError(f"{url}: downloaded file has SHA-256 {digest[:16]}..., expected it to start with "
                       f"{sha256_prefix} (the hash in the file name); nothing was kept: try again, or {hint}")
    os.chmod(part, 0o666 & ~umask())  # mkstemp's 0600 -> what a plain open() would give
    os.replace(part, target)
    return digest


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def imagenet_labels() -> list[str]:
    """The 1,000 ImageNet-1K class names in torchvision's order (``edgecnn/data/imagenet_classes.txt``)."""
    text = resources.files("edgecnn").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line]
