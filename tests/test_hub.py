"""Published weights: cards vs torchvision's facts, the cache, torch hub's cache, and downloads from a
local HTTP server on 127.0.0.1 (hash mismatch, truncated transfer, 404, no network). Nothing leaves
the machine; no torch needed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from edgecnn import hub, registry
from edgecnn.registry import Pretrained
from tests.http_server import closed_port, serve

FIXTURE = json.loads((Path(__file__).parent / "models" / "fixtures" / "torchvision_layout.json").read_text())


@pytest.fixture
def server():
    with serve() as served:
        yield served


@pytest.fixture(autouse=True)
def homes(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECNN_HOME", str(tmp_path / "edgecnn-home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("EDGECNN_WEIGHTS_MIRROR", raising=False)


def _published(base: str, body: bytes, stem: str = "tiny") -> Pretrained:
    prefix = hashlib.sha256(body).hexdigest()[:8]
    return Pretrained("imagenet1k_v1", f"{base}/{stem}-{prefix}.pth", crop=224, resize=256)


# ---- the facts on the cards are torchvision's (recorded from torchvision 0.29.1 by the fixture script)

@pytest.mark.parametrize("tv_name", sorted(FIXTURE["models"]))
def test_cards_repeat_torchvision_weights(tv_name):
    card = next(c for c in registry.REGISTRY.values() if c.torchvision == tv_name)
    expected = FIXTURE["models"][tv_name]["weights"]
    got = [{"tag": p.tag, "url": p.url, "crop": p.crop, "resize": p.resize, "interpolation": p.interpolation,
            "top1": p.top1, "top5": p.top5} for p in card.pretrained]
    assert got == [{k: e[k] for k in got[0]} for e in expected]  # DEFAULT first: what --weights imagenet takes
    assert all(e["mean"] == [0.485, 0.456, 0.406] and e["std"] == [0.229, 0.224, 0.225] for e in expected)


def test_packaged_class_names_are_torchvision_categories():
    labels = hub.imagenet_labels()
    assert labels == FIXTURE["imagenet_categories"]
    assert len(labels) == 1000 and labels[281] == "tabby"


def test_hash_prefix_is_read_from_the_file_name():
    p = registry.get_card("resnet18").pretrained[0]
    assert (p.filename, p.sha256_prefix) == ("resnet18-f37072fd.pth", "f37072fd")
    p = registry.get_card("efficientnet_b0").pretrained[0]
    assert p.sha256_prefix == "7f5810bc"


def test_resolve_tags_and_refusals():
    card = registry.get_card("mobilenetv2")
    assert hub.resolve(card, "imagenet").tag == "imagenet1k_v2"
    assert hub.resolve(card, "IMAGENET1K_V1").url.endswith("mobilenet_v2-b0353104.pth")
    with pytest.raises(hub.UsageError, match="mobilenetv1 has no published ImageNet weights"):
        hub.resolve(registry.get_card("mobilenetv1"), "imagenet")
    with pytest.raises(hub.UsageError, match="resnet18 has no 'imagenet1k_v2' weights; it has: imagenet"):
        hub.resolve(registry.get_card("resnet18"), "imagenet1k_v2")


def test_coco_tags_name_a_detectors_weights():
    assert hub.is_tag("coco") and hub.is_tag("COCO_V1") and not hub.is_tag("coco.pth")
    assert hub.dataset("coco_v1") == "COCO" and hub.dataset("imagenet1k_v2") == "ImageNet"
    for name, file in (("ssdlite320_mobilenetv3_large", "ssdlite320_mobilenet_v3_large_coco-a79551df.pth"),
                       ("ssd300_vgg16", "ssd300_vgg16_coco-b556d3b4.pth")):
        p = hub.resolve(registry.get_card(name), "coco")
        assert p.filename == file and p.sha256_prefix == file[-12:-4] and hub.resolve(registry.get_card(name),
                                                                                      "coco_v1") is p
    with pytest.raises(hub.UsageError, match="mobilenetv2 has no published COCO weights .*--weights imagenet"):
        hub.resolve(registry.get_card("mobilenetv2"), "coco")


# ---- download, cache, torch hub's cache

def test_download_then_cache_hit(server):
    handler, base = server, server.base
    body = b"weights" * 1000
    p = _published(base, body)
    handler.files["/" + p.filename] = body
    first = hub.fetch(p)
    assert first.source == "download" and first.path.read_bytes() == body
    assert first.path == hub.home() / "checkpoints" / p.filename
    assert first.sha256 == hashlib.sha256(body).hexdigest()
    assert list(first.path.parent.iterdir()) == [first.path]  # no .part left
    second = hub.fetch(p)
    assert second.source == "cache" and second.path == first.path
    assert len(handler.hits) == 1  # the second call did not download


def test_torch_hub_cache_is_used_in_place(server):
    handler, base = server, server.base
    body = b"torchvision downloaded me"
    p = _published(base, body)
    hub_file = hub.torch_hub_checkpoints() / p.filename
    hub_file.parent.mkdir(parents=True)
    hub_file.write_bytes(body)
    got = hub.fetch(p)
    assert got.source == "torch-hub-cache" and got.path == hub_file
    assert handler.hits == [] and not (hub.home() / "checkpoints").exists()


def test_torch_home_default_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.torch_hub_checkpoints() == tmp_path / "xdg" / "torch" / "hub" / "checkpoints"


def test_wrong_file_in_cache_is_replaced(server):
    handler, base = server, server.base
    body = b"the right bytes"
    p = _published(base, body)
    handler.files["/" + p.filename] = body
    stale = hub.home() / "checkpoints" / p.filename
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"a half-copied file")
    got = hub.fetch(p)
    assert got.source == "download" and got.path.read_bytes() == body


def test_hash_mismatch_keeps_nothing(server):
    handler, base = server, server.base
    p = _published(base, b"what the name promises")
    handler.files["/" + p.filename] = b"something else"
    with pytest.raises(hub.HubError) as e:
        hub.fetch(p)
    msg = str(e.value)
    assert msg.startswith(f"{p.url}: downloaded file has SHA-256 {hashlib.sha256(b'something else').hexdigest()[:16]}")
    assert f"expected it to start with {p.sha256_prefix}" in msg and "\n" not in msg
    assert not any((hub.home() / "checkpoints").iterdir())


def test_truncated_transfer_keeps_nothing(server):
    handler, base = server, server.base
    body = b"x" * 5000
    p = _published(base, body)
    handler.files["/" + p.filename] = body
    handler.truncate.add("/" + p.filename)
    with pytest.raises(hub.HubError, match=rf"could not download {p.url}: the transfer stopped after"):
        hub.fetch(p)
    assert not any((hub.home() / "checkpoints").iterdir())


def test_404_names_url_and_the_way_by_hand(server):
    base = server.base
    p = _published(base, b"never served")
    with pytest.raises(hub.HubError) as e:
        hub.fetch(p)
    assert str(e.value) == (f"could not download {p.url}: HTTP 404 Not Found; offline or behind a proxy? "
                            f"download {p.url} by other means and pass it with --weights {p.filename} "
                            f"(or put it at {hub.home() / 'checkpoints' / p.filename})")


def test_no_network_is_one_line():
    p = _published(f"http://127.0.0.1:{closed_port()}", b"x")
    with pytest.raises(hub.HubError) as e:
        hub.fetch(p, timeout=5)
    msg = str(e.value)
    assert msg.startswith(f"could not download {p.url} (") and "Connection refused" in msg
    assert f"--weights {p.filename}" in msg and "\n" not in msg


def test_offline_error_names_the_commands_own_option():
    # train takes the file with --init, not --weights (export's option)
    p = _published(f"http://127.0.0.1:{closed_port()}", b"x")
    with pytest.raises(hub.HubError) as e:
        hub.fetch(p, timeout=5, option="--init")
    assert f"pass it with --init {p.filename}" in str(e.value) and "--weights" not in str(e.value)


def test_mirror_replaces_the_host(server, monkeypatch):
    base = server.base
    card_file = registry.get_card("resnet18").pretrained[0]
    monkeypatch.setenv("EDGECNN_WEIGHTS_MIRROR", base + "/mirror/")
    assert hub.url(card_file) == f"{base}/mirror/resnet18-f37072fd.pth"


def test_hub_works_without_torch():
    from tests.conftest import run_python

    r = run_python("""
        from edgecnn import hub, registry
        p = hub.resolve(registry.get_card("convnext_tiny"), "imagenet")
        print(p.filename, len(hub.imagenet_labels()))
    """, block_torch=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["convnext_tiny-983f1562.pth", "1000"]
