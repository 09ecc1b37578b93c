"""``python -m edgecnn.train MODEL --data ...``: ``edgecnn train`` as a module, the entry point that
``torchrun --nproc-per-node N -m edgecnn.train ...`` starts once per process."""

from __future__ import annotations

import sys

from edgecnn.cli.main import app


def main() -> None:
    argv = sys.argv[1:]
    debug = ["--debug"] if "--debug" in argv else []  # a root option: it goes before the command
    app(args=[*debug, "train", *[a for a in argv if a != "--debug"]], prog_name="python -m edgecnn.train")


if __name__ == "__main__":
    main()
