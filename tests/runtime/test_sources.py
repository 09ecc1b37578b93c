"""PATH arguments -> image files: files, recursive folders, globs, and the errors for each."""

from pathlib import Path

import pytest

from edgecnn.runtime.sources import SourceError, collect_images, count_images, expand, iter_images


@pytest.fixture
def tree(tmp_path):
    for rel in ["a.jpg", "b.PNG", "notes.txt", ".hidden.jpg", "sub/c.webp", "sub/deeper/d.tiff", ".cache/e.jpg",
                "sub/f.gif"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    return tmp_path


def test_folder_is_walked_recursively_files_before_subfolders(tree):
    files = list(iter_images(expand([tree])))
    assert [f.rel.as_posix() for f in files] == ["a.jpg", "b.PNG", "sub/c.webp", "sub/f.gif", "sub/deeper/d.tiff"]
    assert files[2].path == tree / "sub" / "c.webp"
    assert count_images(expand([tree])) == 5


def test_files_folders_and_globs_in_argument_order(tree):
    paths = collect_images([tree / "notes.txt", str(tree / "sub" / "*.gif"), tree / "sub" / "deeper"])
    # a file given by name is taken whatever its suffix: the decoder reports it if it is no image
    assert paths == [tree / "notes.txt", tree / "sub" / "f.gif", tree / "sub" / "deeper" / "d.tiff"]
    assert [f.rel for f in iter_images(expand([tree / "a.jpg"]))] == [Path("a.jpg")]


def test_recursive_glob_keeps_images_only(tree):
    got = collect_images([str(tree / "**" / "*")])
    assert tree / "notes.txt" not in got and tree / "sub" / "deeper" / "d.tiff" in got


def test_errors_name_the_argument(tree):
    with pytest.raises(SourceError, match=r"missing.jpg: no such file or folder$"):
        expand([tree / "a.jpg", tree / "missing.jpg"])
    with pytest.raises(SourceError, match=r"empty: no images in this folder \(looked for .jpg, .jpeg, .png"):
        expand([tree / "empty"])
    with pytest.raises(SourceError, match=r"\*.bmp: no image files match this pattern$"):
        expand([str(tree / "*.bmp")])
    with pytest.raises(SourceError, match="no input"):
        expand([])


def test_exclude_skips_an_output_folder(tree):
    assert [f.rel.as_posix() for f in iter_images(expand([tree]), exclude=tree / "sub")] == ["a.jpg", "b.PNG"]
