"""``edgecnn infer`` through the CLI: every output format, folders with bad files, every image mode,
detection with annotated copies checked pixel by pixel, third-party files, exact error lines."""

import csv
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from edgecnn.runtime.draw import class_color
from tests import imagegen, onnx_models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {
        # trained weights (the colour model's weights are exact, whatever its contract says): labels shown
        "cls": onnx_models.classifier(d / "colors.onnx", weights={"path": "c.pt", "sha256": "1" * 64}),
        "random": onnx_models.classifier(d / "random.onnx"),  # contract weights: random-init
        "trained": onnx_models.classifier(d / "trained.onnx", weights={"path": "w.pt", "sha256": "0" * 64}),
        "other": onnx_models.classifier(d / "other.onnx", contract=False, input_name="data", batch=1,
                                        probabilities=True),
        "dyn": onnx_models.classifier(d / "dyn.onnx", contract=False, dynamic_classes=True),  # 4, known at run
        "det": onnx_models.detector(d / "det.onnx"),
        "det_graph": onnx_models.detector(d / "det_graph.onnx", nms="graph"),
    }


@pytest.fixture
def folder(tmp_path):
    """red.png, blue.jpg, sub/green.bmp and a text file named bad.jpg."""
    f = tmp_path / "imgs"
    imagegen.save(Image.new("RGB", (40, 30), (255, 0, 0)), f / "red.png")
    imagegen.save(Image.new("RGB", (30, 40), (0, 0, 255)), f / "blue.jpg")
    imagegen.save(Image.new("RGB", (50, 50), (0, 255, 0)), f / "sub" / "green.bmp")
    imagegen.text_as_jpeg(f / "bad.jpg")
    return f


RANDOM_INIT = "holds random-init weights (contract \"weights\": \"random-init\"); its predictions are meaningless"


def test_help_ends_with_an_example(cli):
    r = cli("infer", "--help")
    assert r.exit_code == 0
    assert "Example: edgecnn infer photos/ --model export/mobilenetv2.onnx --topk 3" in r.stdout
    assert "the graph must take it; needed for a file with a dynamic input size and no contract" in " ".join(
        r.stdout.split())


def test_classification_table(cli, models, folder):
    r = cli("infer", str(folder / "red.png"), "--model", str(models["cls"]), "--topk", "2")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"{folder / 'red.png'} (40x30): 2 predictions"
    assert lines[1].split() == ["rank", "class", "label", "score"]
    assert lines[3].split()[:3] == ["1", "0", "red"] and lines[4].split()[:3] == ["2", "3", "gray"]
    err = r.stderr.splitlines()
    assert len(err) == 1 and err[0].startswith("1 image: 1 ok, 0 failed in ") and "images/s" in err[0]


def test_random_init_says_random_weights_where_the_classes_would_be(cli, models, folder):
    r = cli("infer", str(folder / "red.png"), "--model", str(models["random"]), "--topk", "2")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[3].split()[:4] == ["1", "0", "random", "weights"] and lines[4].split()[:4] == [
        "2", "3", "random", "weights"]
    assert " red " not in r.stdout and "gray" not in r.stdout
    assert r.stderr.splitlines()[0] == f"Warning: {models['random']} {RANDOM_INIT}"
    doc = json.loads(cli("infer", str(folder / "red.png"), "-m", str(models["random"]), "-k", "1",
                         "-f", "jsonl").stdout)
    assert [(p["class"], p["label"]) for p in doc["predictions"]] == [(0, "random weights")]


def test_folder_with_a_bad_file_goes_on_and_exits_1(cli, models, folder):
    r = cli("infer", str(folder), "--model", str(models["trained"]), "--topk", "1", "--format", "json")
    assert r.exit_code == 1
    assert r.stderr.splitlines()[0] == f"Error: {folder / 'bad.jpg'}: not an image, or a format Pillow cannot read"
    assert r.stderr.splitlines()[1].startswith("4 images: 3 ok, 1 failed in ")
    assert "Traceback" not in r.stderr and "Warning" not in r.stderr  # trained weights: no warning
    doc = json.loads(r.stdout)
    assert list(doc) == ["model", "task", "contract", "results", "summary"]
    assert (doc["task"], doc["contract"]) == ("classify", "file")
    by_name = {res["image"].rsplit("/", 1)[-1]: res for res in doc["results"]}
    assert [res["image"].rsplit("/", 1)[-1] for res in doc["results"]] == ["bad.jpg", "blue.jpg", "red.png",
                                                                          "green.bmp"]
    assert by_name["red.png"] == {"image": str(folder / "red.png"), "width": 40, "height": 30, "task": "classify",
                                  "predictions": [{"rank": 1, "class": 0, "label": "red",
                                                   "score": by_name["red.png"]["predictions"][0]["score"]}],
                                  "error": None}
    assert by_name["green.bmp"]["predictions"][0]["label"] == "green"
    assert by_name["bad.jpg"]["error"].endswith("bad.jpg: not an image, or a format Pillow cannot read")
    assert by_name["bad.jpg"]["predictions"] == [] and by_name["bad.jpg"]["width"] is None
    s = doc["summary"]
    assert set(s) == {"images", "ok", "failed", "seconds", "images_per_s", "ms_per_image", "provider", "runtime"}
    assert s["runtime"] == {"runtime": "ort", "reason": "asked", "model": str(models["trained"])}
    assert (s["images"], s["ok"], s["failed"]) == (4, 3, 1)
    assert set(s["ms_per_image"]) == {"decode", "inference", "postprocess"}


def test_jsonl_and_csv(cli, models, folder):
    r = cli("infer", str(folder), "-m", str(models["cls"]), "-k", "2", "--format", "jsonl", "--batch", "3")
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(records) == 4 and all(set(x) == {"image", "width", "height", "task", "predictions", "error"}
                                     for x in records)
    r = cli("infer", str(folder), "-m", str(models["cls"]), "-k", "2", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == ["image", "width", "height", "task", "rank", "class", "label", "score",
                             "x1", "y1", "x2", "y2", "error"]
    assert len(rows) == 1 + 3 * 2  # the bad file's error row, then 2 predictions for each good image
    assert rows[0]["error"].endswith("not an image, or a format Pillow cannot read") and rows[0]["rank"] == ""
    red = [row for row in rows if row["image"].endswith("red.png")]
    assert [(row["rank"], row["label"], row["x1"]) for row in red] == [("1", "red", ""), ("2", "gray", "")]


def test_batching_does_not_change_results(cli, models, folder):
    one = json.loads(cli("infer", str(folder), "-m", str(models["cls"]), "-f", "json").stdout)["results"]
    three = json.loads(cli("infer", str(folder), "-m", str(models["cls"]), "-f", "json", "-b", "3").stdout)["results"]
    for a, b in zip(one, three, strict=True):
        assert a["image"] == b["image"] and a["error"] == b["error"]
        assert [p["class"] for p in a["predictions"]] == [p["class"] for p in b["predictions"]]
        np.testing.assert_allclose([p["score"] for p in a["predictions"]], [p["score"] for p in b["predictions"]],
                                   rtol=1e-5)


def test_every_image_mode_and_format(cli, models, tmp_path):
    paths = imagegen.write_all(tmp_path / "all")
    imagegen.exif_rotated_jpeg(tmp_path / "all" / "exif.jpg")
    r = cli("infer", str(tmp_path / "all"), "-m", str(models["cls"]), "-k", "1", "-f", "jsonl")
    assert r.exit_code == 0, r.stderr
    got = {json.loads(line)["image"]: json.loads(line) for line in r.stdout.splitlines()}
    assert len(got) == len(paths) + 1
    for name in imagegen.red_images():
        assert got[str(paths[name])]["predictions"][0]["label"] == "red", name
    exif = got[str(tmp_path / "all" / "exif.jpg")]
    assert (exif["width"], exif["height"]) == (20, 40)  # upright


def test_bad_inputs_each_get_one_line(cli, models, tmp_path):
    files = {
        "empty.jpg": imagegen.empty_file(tmp_path / "empty.jpg"),
        "trunc.jpg": imagegen.truncated_jpeg(tmp_path / "trunc.jpg"),
        "text.jpg": imagegen.text_as_jpeg(tmp_path / "text.jpg"),
        "bomb.png": imagegen.bomb_png(tmp_path / "bomb.png"),
    }
    r = cli("infer", *map(str, files.values()), "-m", str(models["cls"]))
    assert r.exit_code == 1 and r.stdout == ""
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error: ")]
    # Pillow's own words for the truncation change between versions; ours around them do not
    errors = [re.sub(r"truncated or corrupt image \(.+\)$", "truncated or corrupt image (<Pillow's reason>)", e)
              for e in errors]
    assert errors == [f"Error: {files['empty.jpg']}: empty file",
                      f"Error: {files['trunc.jpg']}: truncated or corrupt image (<Pillow's reason>)",
                      f"Error: {files['text.jpg']}: not an image, or a format Pillow cannot read",
                      f"Error: {files['bomb.png']}: more than 89,478,485 pixels (possible decompression bomb)"]


@pytest.mark.parametrize("args, code, message", [
    (["{tmp}/nope.jpg"], 1, "Error: {tmp}/nope.jpg: no such file or folder"),
    (["{tmp}/empty"], 1, "Error: {tmp}/empty: no images in this folder (looked for .jpg, .jpeg, .png, .bmp, .gif, "
                         ".webp, .tif, .tiff)"),
    (["{tmp}/*.gif"], 1, "Error: {tmp}/*.gif: no image files match this pattern"),
    (["x.jpg", "--format", "xml"], 2, "Error: unknown --format 'xml'; choose one of: table, json, jsonl, csv"),
    (["x.jpg", "--topk", "0"], 2, "Error: --topk must be >= 1, got 0"),
    (["x.jpg", "--conf", "1.5"], 2, "Error: --conf must be in [0.0, 1.0], got 1.5"),
    (["{tmp}/a.png", "--provider", "{missing}"], 1,  # the machine lacks it: not a malformed command
     "Error: provider '{missing}' ({missing_ep}) is not available in this onnxruntime; available: {available}"),
    (["{tmp}/a.png", "--model", "mobilenetv2"], 1,
     "Error: export/mobilenetv2.onnx not found; make it with: edgecnn export mobilenetv2 --weights imagenet"),
    (["{tmp}/a.png", "--model", "nope.onnx"], 1, "Error: model file 'nope.onnx' not found"),
    (["{tmp}/a.png", "--classes", "cow"], 2,
     "Error: --classes: 'cow' is neither a class index nor a label of this model; labels: red, green, blue, gray"),
    (["{tmp}/a.png", "--classes", "7"], 2,
     "Error: --classes: class 7 does not exist; the model has 4 classes (0-3)"),
])
def test_usage_errors(cli, models, tmp_path, monkeypatch, args, code, message):
    import onnxruntime as ort

    from edgecnn.runtime.session import PROVIDERS

    available = ort.get_available_providers()
    missing = next((k for k, v in PROVIDERS.items() if v not in available), None)
    if "{missing}" in args and missing is None:
        pytest.skip("every provider edgecnn knows is installed here")
    names = {"tmp": tmp_path, "missing": missing, "missing_ep": PROVIDERS.get(missing),
             "available": ", ".join(k for k, v in PROVIDERS.items() if v in available)}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    args = [a.format(**names) for a in args]
    if "--model" not in args:
        args += ["--model", str(models["cls"])]
    r = cli("infer", *args)
    assert r.exit_code == code
    assert r.stderr.splitlines()[-1] == message.format(**names)
    assert "Traceback" not in r.stderr


def test_zoo_name_resolves_to_the_export_folder(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    onnx_models.classifier(tmp_path / "export" / "mobilenetv2.onnx")
    Image.new("RGB", (8, 8), (0, 0, 255)).save(tmp_path / "b.png")
    r = cli("infer", "b.png", "-k", "1", "-f", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["model"] == "export/mobilenetv2.onnx"


def test_third_party_file_with_overrides(cli, models, folder):
    r = cli("infer", str(folder / "red.png"), "-m", str(models["other"]), "-k", "1", "-f", "json")
    assert r.exit_code == 0
    assert r.stderr.startswith("Warning: other.onnx has no edgecnn contract; assuming a classifier with ImageNet ")
    doc = json.loads(r.stdout)
    assert doc["contract"] == "graph"
    pred = doc["results"][0]["predictions"][0]
    assert (pred["class"], pred["label"]) == (0, "0") and pred["score"] > 0.9  # probabilities kept as they are
    r = cli("infer", str(folder / "red.png"), "-m", str(models["other"]), "-k", "1", "-f", "json",
            "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5", "--labels", "r,g,b,k", "--size", "32")
    assert "Warning" not in r.stderr
    assert json.loads(r.stdout)["results"][0]["predictions"][0]["label"] == "r"


def test_labels_file(cli, models, folder, tmp_path):
    (tmp_path / "labels.txt").write_text("rouge\nvert\nbleu\ngris\n")
    r = cli("infer", str(folder / "red.png"), "-m", str(models["cls"]), "-k", "1", "-f", "jsonl",
            "--labels", str(tmp_path / "labels.txt"))
    assert json.loads(r.stdout)["predictions"][0]["label"] == "rouge"


@pytest.mark.parametrize("name, content", [
    ("crlf.txt", b"rouge\r\nvert\r\n\r\n  bleu \r\ngris\r\n"),  # CRLF, a blank line, spaces: as export reads it
    ("bom.txt", "\ufeffrouge\nvert\nbleu\ngris".encode()),
    ("labels.json", b'["rouge", "vert", "bleu", "gris"]'),
])
def test_labels_files_parse_like_export(cli, models, folder, tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    r = cli("infer", str(folder / "red.png"), "-m", str(models["trained"]), "-k", "4", "-f", "jsonl",
            "--labels", str(tmp_path / name))
    assert r.exit_code == 0, r.stderr
    assert [p["label"] for p in json.loads(r.stdout)["predictions"]] == ["rouge", "gris", "bleu", "vert"]


@pytest.mark.parametrize("name, content, why", [
    ("latin1.txt", "rouge\nvert\nbleu\ngris\xe9\n".encode("latin-1"), "not a readable labels file ("),
    ("bad.json", b'["rouge", "vert"', "not a readable labels file ("),
    ("dict.json", b'{"0": "rouge"}', "expected a JSON list of strings"),
    ("blank.txt", b"\n\n", "no labels in the file"),
    ("missing.txt", None, "no such file"),
])
def test_bad_labels_file_is_one_line(cli, models, folder, tmp_path, name, content, why):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    r = cli("infer", str(folder / "red.png"), "-m", str(models["trained"]), "--labels", str(tmp_path / name))
    assert r.exit_code == 1 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"Error: --labels {tmp_path / name}: {why}")


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl", "csv"])
@pytest.mark.parametrize("model, extra", [("cls", []),  # the class count from the graph's output shape
                                          ("dyn", ["--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5"])])  # from a run
def test_unknown_class_index_writes_nothing(cli, models, folder, fmt, model, extra):
    r = cli("infer", str(folder), "-m", str(models[model]), "--classes", "9", "-f", fmt, *extra)
    assert r.exit_code == 2
    assert r.stdout == ""
    assert r.stderr.splitlines() == ["Error: --classes: class 9 does not exist; the model has 4 classes (0-3)"]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_error_mid_stream_leaves_whole_documents(cli, models, folder, tmp_path, fmt):
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("a file where the annotated sub/green.bmp needs a folder")
    r = cli("infer", str(folder), "-m", str(models["trained"]), "-k", "1", "-f", fmt, "--save", str(out))
    assert r.exit_code == 1
    err = r.stderr.splitlines()
    assert err[-1].startswith(f"Error: cannot write {out / 'sub' / 'green.bmp'}")
    if fmt == "json":  # closed: the records so far, then the error instead of the summary
        doc = json.loads(r.stdout)
        assert [x["image"].rsplit("/", 1)[-1] for x in doc["results"]] == ["bad.jpg", "blue.jpg", "red.png"]
        assert list(doc) == ["model", "task", "contract", "results", "error"] and doc["error"] == err[-1][7:]
    elif fmt == "jsonl":
        assert len([json.loads(line) for line in r.stdout.splitlines()]) == 3
    else:
        rows = list(csv.DictReader(io.StringIO(r.stdout)))
        assert [row["image"].rsplit("/", 1)[-1] for row in rows] == ["bad.jpg", "blue.jpg", "red.png"]


def test_save_keeps_same_named_files_apart(cli, models, tmp_path):
    for sub, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        imagegen.save(Image.new("RGB", (40, 30), colour), tmp_path / sub / "x.png")
    out = tmp_path / "out"
    for _ in range(2):  # a second run overwrites its own copies, it does not add x_2, x_3
        r = cli("infer", str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "a" / "x.png"), "-m",
                str(models["trained"]), "-k", "1", "--save", str(out))
        assert r.exit_code == 0, r.stderr
        assert sorted(p.name for p in out.iterdir()) == ["x.png", "x_1.png", "x_2.png"]
    corners = [tuple(np.asarray(Image.open(out / n))[-1, -1]) for n in ("x.png", "x_1.png", "x_2.png")]
    assert corners == [(255, 0, 0), (0, 0, 255), (255, 0, 0)]  # in input order: a/x.png, b/x.png, a/x.png


# ---- detection ---------------------------------------------------------------------------------------


@pytest.fixture
def white(tmp_path):
    return imagegen.save(Image.new("RGB", (128, 64), "white"), tmp_path / "in" / "white.png")


def test_detection_json_and_table(cli, models, white):
    r = cli("infer", str(white), "-m", str(models["det"]), "-f", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["task"] == "detect"
    preds = doc["results"][0]["predictions"]
    assert [(p["label"], p["box"]) for p in preds] == [("cat", [16.0, 16.0, 80.0, 48.0]),
                                                       ("dog", [16.0, 16.0, 72.0, 48.0])]
    assert set(preds[0]) == {"class", "label", "score", "box"}
    r = cli("infer", str(white), "-m", str(models["det"]))
    lines = r.stdout.splitlines()
    assert lines[0] == f"{white} (128x64): 2 detections"
    assert lines[1].split() == ["class", "label", "score", "x1", "y1", "x2", "y2"]
    assert lines[3].split() == ["1", "cat", "0.6512", "16.0", "16.0", "80.0", "48.0"]


def test_detection_options(cli, models, white):
    def labels(*args):
        r = cli("infer", str(white), "-m", str(models["det"]), "-f", "json", *args)
        assert r.exit_code == 0, r.stderr
        return [p["label"] for p in json.loads(r.stdout)["results"][0]["predictions"]]

    assert labels("--iou", "0.9") == ["cat", "cat", "dog"]
    assert labels("--max-det", "1") == ["cat"]
    assert labels("--classes", "dog") == ["dog"]
    assert labels("--conf", "0.6") == ["cat"]
    assert labels("--conf", "0.05", "--classes", "1") == ["cat", "cat"]


def test_graph_nms_detector(cli, models, white):
    r = cli("infer", str(white), "-m", str(models["det_graph"]), "-f", "jsonl")
    preds = json.loads(r.stdout)["predictions"]
    assert [(p["label"], p["score"], p["box"]) for p in preds] == [("cat", 0.9, [16.0, 16.0, 80.0, 48.0]),
                                                                   ("dog", 0.7, [16.0, 16.0, 72.0, 48.0])]


def test_annotated_detection_boxes_are_at_the_right_pixels(cli, models, white, tmp_path):
    out = tmp_path / "out"
    r = cli("infer", str(white.parent), "-m", str(models["det"]), "--save", str(out))
    assert r.exit_code == 0 and f"annotated copies in {out}/" in r.stderr
    im = Image.open(out / "white.png")
    assert im.size == (128, 64) and im.mode == "RGB"
    px = np.asarray(im)
    cat, dog, white_px = class_color(1), class_color(2), (255, 255, 255)
    # cat box [16, 16, 80, 48]: outline on columns 16 and 79, row 47; dog box [16, 16, 72, 48]: column 71
    assert tuple(px[40, 16]) == cat and tuple(px[40, 79]) == cat and tuple(px[47, 50]) == cat
    assert tuple(px[40, 71]) == dog
    assert tuple(px[40, 15]) == white_px and tuple(px[40, 80]) == white_px and tuple(px[48, 50]) == white_px
    assert tuple(px[40, 50]) == white_px  # inside the box
    tag = px[4:15, 17:50]  # the "cat 0.65" tag sits on the box's top-left corner, above it
    assert (tag == cat).all(axis=-1).mean() > 0.5 and (tag.sum(-1) < 100).any()  # filled, with dark text on it


def test_annotated_classification_is_a_real_image(cli, models, folder, tmp_path):
    out = tmp_path / "out"
    r = cli("infer", str(folder), "-m", str(models["cls"]), "--save", str(out), "--topk", "1")
    assert r.exit_code == 1  # bad.jpg
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "blue.jpg", "red.png", "sub/green.bmp"]
    im = Image.open(out / "red.png")
    px = np.asarray(im)
    assert im.size == (40, 30) and tuple(px[0, 0]) == (0, 0, 0)  # the dark label tag
    assert (px[1:12, 1:38].min(-1) > 200).any()  # white text on it
    assert tuple(px[-1, -1]) == (255, 0, 0)  # the rest is the image
    assert not list(out.rglob("*.tmp"))


def test_save_folder_inside_the_input_folder_is_not_read_back(cli, models, folder):
    for _ in range(2):
        r = cli("infer", str(folder), "-m", str(models["cls"]), "-f", "jsonl", "--save", str(folder / "annotated"))
        assert r.exit_code == 1  # bad.jpg
        assert not any("annotated" in json.loads(line)["image"] for line in r.stdout.splitlines())
    assert (folder / "annotated" / "red.png").is_file() and not (folder / "annotated" / "annotated").exists()


# ---- outputs read for what they are: raw maps and sequences, YOLO heads, a task the outputs cannot carry ----

@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    from tests.runtime import heads

    d = tmp_path_factory.mktemp("foreign")
    return {"map": heads.dense_map(d / "map.onnx", contract="raw"),
            "map2": heads.dense_map(d / "map2.onnx", contract="raw", extra_output=True),
            "map_cls": heads.dense_map(d / "map_cls.onnx", contract="classify"),
            "seq": heads.sequence(d / "seq.onnx"),
            "yolo": heads.yolo(d / "yolo.onnx", "yolov8")}


def test_raw_map_table_json_csv(cli, foreign, folder):
    red = str(folder / "red.png")
    r = cli("infer", red, "-m", str(foreign["map"]))
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"{red} (40x30): 1 output"
    assert lines[1].split() == ["output", "shape", "dtype", "min", "max", "mean", "std", "argmax"]
    assert lines[3].split() == ["map", "1x1x64x64", "float32", "1", "1", "1", "0", "0x0x0x0"]
    assert "class" not in r.stdout and "Warning" not in r.stderr
    doc = json.loads(cli("infer", red, "-m", str(foreign["map"]), "-f", "json").stdout)
    assert doc["task"] == "raw"
    assert doc["results"][0]["predictions"] == [{"output": "map", "shape": [1, 1, 64, 64], "dtype": "float32",
                                                 "min": 1.0, "max": 1.0, "mean": 1.0, "std": 0.0,
                                                 "argmax": [0, 0, 0, 0]}]
    rows = list(csv.DictReader(io.StringIO(cli("infer", str(folder), "-m", str(foreign["map2"]), "-f", "csv").stdout)))
    assert list(rows[0]) == ["image", "width", "height", "task", "output", "shape", "dtype", "min", "max", "mean",
                             "std", "argmax", "error"]
    blue = [(row["output"], row["shape"], row["max"], row["argmax"])
            for row in rows if row["image"].endswith("blue.jpg")]
    assert blue == [("map", "1x1x64x64", "0.0", "0x0x0x0"), ("count", "1x2", "2.0", "0x1")]
    assert [row["error"] != "" for row in rows if row["image"].endswith("bad.jpg")] == [True]


def test_raw_save_writes_each_images_outputs(cli, foreign, folder, tmp_path):
    out = tmp_path / "out"
    r = cli("infer", str(folder), "-m", str(foreign["map"]), "--save", str(out), "-f", "jsonl")
    assert r.exit_code == 1  # bad.jpg
    assert r.stderr.splitlines()[-1].endswith(f"; outputs as .npy/.npz in {out}/")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "blue.npy", "red.npy", "sub/green.npy"]
    np.testing.assert_array_equal(np.load(out / "red.npy"), np.ones((1, 1, 64, 64), np.float32))  # the red channel
    np.testing.assert_array_equal(np.load(out / "blue.npy"), np.zeros((1, 1, 64, 64), np.float32))
    out2 = tmp_path / "out2"
    assert cli("infer", str(folder / "sub"), "-m", str(foreign["map2"]), "--save", str(out2)).exit_code == 0
    with np.load(out2 / "green.npz") as z:
        assert sorted(z.files) == ["count", "map"] and z["count"].tolist() == [[0.0, 2.0]]


def test_sequence_without_contract_is_raw_not_a_class(cli, foreign, folder):
    r = cli("infer", str(folder / "red.png"), "-m", str(foreign["seq"]), "-f", "jsonl")
    assert r.exit_code == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["task"] == "raw" and [p["shape"] for p in rec["predictions"]] == [[1, 10, 37]]
    assert "class" not in rec["predictions"][0]
    assert r.stderr.startswith("Warning: seq.onnx has no edgecnn contract; assuming raw outputs (probs Nx10x37: ")


def test_classify_contract_on_a_map_is_a_one_line_error(cli, foreign, folder):
    path = foreign["map_cls"]
    r = cli("infer", str(folder / "red.png"), "-m", str(path))
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr == (f"Error: {path}: output 'map' is Nx1x64x64, not a class vector (N, C) or (N, C, 1, 1), so it "
                        f"cannot be read as classes; declare what it is: edgecnn contract {path} --task raw "
                        "(statistics and --save arrays), or --task detect --layout yolov8|yolov5\n")
    r = cli("infer", str(folder / "red.png"), "-m", str(path), "--classes", "1")
    assert r.exit_code == 1 and r.stderr.startswith(f"Error: {path}: output 'map' is Nx1x64x64")


def test_yolo_head_without_contract_detects(cli, foreign, folder, tmp_path):
    from tests.runtime import heads

    imagegen.save(Image.new("RGB", (64, 64), (90, 90, 90)), tmp_path / "sq.png")
    r = cli("infer", str(tmp_path / "sq.png"), "-m", str(foreign["yolo"]), "-f", "jsonl", "--save",
            str(tmp_path / "ann"))
    assert r.exit_code == 0, r.stderr
    preds = json.loads(r.stdout.splitlines()[0])["predictions"]
    assert [(p["class"], p["score"], p["box"]) for p in preds] == [
        (1, 0.9, [16.0, 24.0, 32.0, 40.0]), (0, 0.7, [28.0, 53.0, 36.0, 59.0]), (2, 0.6, [17.0, 24.0, 33.0, 40.0]),
        (0, 0.5, [43.0, 34.0, 53.0, 46.0])]
    assert "assuming a yolov8-layout detector (output0 Nx7x84) with Ultralytics" in r.stderr and heads.SIZE == 64
    assert (tmp_path / "ann" / "sq.png").is_file()
