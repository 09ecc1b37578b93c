"""`edgecnn data` needs no torch; `edgecnn train` without torch names the extra in one line."""

from __future__ import annotations

from tests.conftest import run_cli, run_python


def test_data_commands_and_sources_without_torch(tmp_path):
    r = run_cli("data", "shapes", "--out", str(tmp_path / "s"), "--n", "8", "--size", "16", block_torch=True)
    assert r.returncode == 0, r.stderr
    r = run_python(f"""
        import sys
        from edgecnn.train.datasets import open_data
        data = open_data({str(tmp_path / 's')!r})
        assert (len(data.train), len(data.val)) == (4, 4)  # 8 images: none in val/, so 1 per class held out
        assert sys.modules.get('torch') is None
        print(len(data.classes))
    """, block_torch=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "4"


def test_train_without_torch_names_the_extra(tmp_path):
    r = run_cli("train", "lenet5", "--data", "shapes", block_torch=True)
    assert r.returncode == 1
    assert r.stderr == ('Error: edgecnn train needs torch, which is not installed; '
                        'install it with: pip install "edgecnn[torch]"\n')
