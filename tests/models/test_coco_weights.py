"""``--weights coco`` for a detector, end to end and offline: a torchvision-format checkpoint that the test
makes (the COCO checkpoint's layout, recorded from torchvision in fixtures/ssdlite_torchvision.json) is served
from 127.0.0.1 through ``EDGECNN_WEIGHTS_MIRROR`` under a torchvision-style name carrying its own SHA-256 prefix;
export fetches and checks it, writes the COCO names, torchvision's transform and the published mAP into the
contract, and ``infer`` names COCO classes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgecnn import contract as contract_mod
from edgecnn import hub, registry
from edgecnn.models.ssdlite import torchvision_coco_labels
from tests.http_server import serve

from .tv_weights import state_dict_for

NAME = "ssdlite320_mobilenetv3_large"
FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "ssdlite_torchvision.json").read_text())
PERSON = 1  # torchvision's COCO index of "person"


def coco_checkpoint(folder: Path, stem: str = "ssdlite320_mobilenet_v3_large_coco", favour: int = PERSON) -> Path:
    """A state dict in the layout of torchvision's COCO checkpoint (91 classes) whose class head scores
    ``favour`` highest at every anchor, saved as ``<stem>-<sha256 prefix>.pth`` like torchvision's files."""
    state = state_dict_for(FIXTURE["layout91"])
    for k in registry.build(NAME).head_keys():
        state[k] = torch.zeros_like(state[k])
        if k.endswith("bias"):
            state[k].view(-1, 91)[:, favour] = 8.0
    tmp = folder / "tmp.pth"
    torch.save(state, tmp)
    prefix = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    return tmp.rename(folder / f"{stem}-{prefix}.pth")


@pytest.fixture(autouse=True)
def homes(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECNN_HOME", str(tmp_path / "edgecnn-home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


@pytest.fixture
def mirrored(tmp_path, monkeypatch):
    """The card's COCO weights renamed to the test's checkpoint, served by a local mirror."""
    served = tmp_path / "served"
    served.mkdir()
    path = coco_checkpoint(served)
    card = registry.REGISTRY[NAME]
    real = card.pretrained[0]
    p = dataclasses.replace(real, url=real.url.rsplit("/", 1)[0] + "/" + path.name)
    monkeypatch.setitem(registry.REGISTRY, NAME, dataclasses.replace(card, pretrained=(p,)))
    with serve() as server:
        server.files["/" + path.name] = path.read_bytes()
        monkeypatch.setenv("EDGECNN_WEIGHTS_MIRROR", server.base)
        yield server, p


def test_card_is_torchvisions_coco_v1():
    p = registry.get_card(NAME).pretrained[0]
    assert (p.tag, p.dataset, p.box_map, p.crop) == ("coco_v1", "COCO", 21.3, 320)
    assert p.url == "https://download.pytorch.org/models/ssdlite320_mobilenet_v3_large_coco-a79551df.pth"
    assert hub.resolve(registry.get_card(NAME), "coco") is p
    with pytest.raises(hub.UsageError, match="has no published ImageNet weights .* --weights coco"):
        hub.resolve(registry.get_card(NAME), "imagenet")
    with pytest.raises(hub.UsageError, match="resnet18 has no published COCO weights .* --weights imagenet"):
        hub.resolve(registry.get_card("resnet18"), "coco")


def test_coco_labels_are_torchvisions():
    labels = torchvision_coco_labels()
    assert len(labels) == 91 and labels[:3] == ["__background__", "person", "bicycle"]
    assert labels[12] == "N/A" and labels[90] == "toothbrush" and labels.count("N/A") == 10


@pytest.mark.slow  # one export of the 320-px detector
def test_export_coco_weights_then_infer_names_a_person(cli, mirrored, tmp_path, monkeypatch):
    """The README's `edgecnn export ssdlite320_mobilenetv3_large --weights coco` (without its parity gate) and
    `edgecnn infer street.jpg --model ssdlite320_mobilenetv3_large --save out/ --max-det 5`, in a fresh folder."""
    server, p = mirrored
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "export" / f"{NAME}.onnx"
    r = cli("export", NAME, "--weights", "coco", "--no-check")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith(f"wrote export/{NAME}.onnx (")
    assert server.hits == ["/" + p.filename] and "RANDOM-INIT" not in r.stderr
    assert f"weights: torchvision {NAME} COCO_V1, COCO val2017 box mAP 21.3 (published)" in r.stdout
    assert "preprocess: stretch to 320x320, bilinear, mean [0.5, 0.5, 0.5] std [0.5, 0.5, 0.5]; labels: 91 " \
           "(__background__, person, ...)" in r.stdout
    c = contract_mod.read(str(out))
    assert c.labels == torchvision_coco_labels()
    assert (c.preprocess.resize, c.preprocess.height, c.preprocess.mean) == ("stretch", 320, (0.5, 0.5, 0.5))
    assert c.metrics["coco_val2017_map"] == 21.3 and c.weights["sha256"].startswith(p.sha256_prefix)
    assert c.weights["url"] == p.url and c.weights["path"] == str(hub.home() / "checkpoints" / p.filename)

    img = tmp_path / "street.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(img)
    r = cli("infer", "street.jpg", "--model", NAME, "--save", "out/", "--max-det", "5", "--format", "jsonl")
    assert r.exit_code == 0, r.stderr
    dets = json.loads(r.stdout.splitlines()[0])["predictions"]
    assert len(dets) == 5 and {d["label"] for d in dets} == {"person"}
    assert (tmp_path / "out" / "street.jpg").is_file()
    r = cli("infer", "street.jpg", "--model", NAME, "--format", "jsonl")
    assert len(json.loads(r.stdout)["predictions"]) > 5  # every anchor favours person: --max-det cut them

    # a wrong file in it is refused by its hash and fetched again
    cached = hub.home() / "checkpoints" / p.filename
    cached.write_bytes(b"not the checkpoint")
    got = hub.fetch(hub.resolve(registry.get_card(NAME), "coco"))
    assert got.source == "download" and len(server.hits) == 2
    assert cached.read_bytes() == server.files["/" + p.filename]


def test_offline_names_the_file_to_fetch(cli, mirrored, monkeypatch):
    from tests.http_server import closed_port

    _, p = mirrored
    monkeypatch.setenv("EDGECNN_WEIGHTS_MIRROR", f"http://127.0.0.1:{closed_port()}")
    r = cli("export", NAME, "--weights", "coco", "--no-check")
    assert r.exit_code != 0
    assert f"pass it with --weights {p.filename}" in r.stderr


def test_missing_export_names_the_coco_weights(tmp_path, monkeypatch):
    from edgecnn.runtime.session import EngineError, resolve_model

    monkeypatch.chdir(tmp_path)
    with pytest.raises(EngineError, match=f"make it with: edgecnn export {NAME} --weights coco$"):
        resolve_model(NAME)
