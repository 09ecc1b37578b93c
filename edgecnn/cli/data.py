"""``edgecnn data shapes|mnist``: make training data on disk. NumPy + Pillow only (no torch)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgecnn.cli.main import app
from edgecnn.progress import Progress

data_app = typer.Typer(
    name="data",
    help="Make training data: the synthetic shapes set, or MNIST from its public mirror.\n\n"
         "Example: edgecnn data shapes --out data/shapes --n 1000 --size 64",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(data_app, name="data")


@data_app.command("shapes")
def shapes_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="New (or empty) folder to write."),
    n: int = typer.Option(1000, "--n", help="Number of images."),
    size: int = typer.Option(64, "--size", help="Image side in pixels."),
    task: str = typer.Option("classify", "--task", help="classify (ImageFolder) or detect (COCO JSON)."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same bytes."),
) -> None:
    """Generate coloured shapes (circle, triangle, square, star) on textured backgrounds.

    classify: DIR/{train,val}/<class>/<n>.png, one shape per image, classes balanced, every fifth
    image of a class in val. detect: DIR/{train,val}/<n>.png with 1-4 shapes each and
    DIR/annotations/instances_{train,val}.json (COCO, bbox x,y,w,h in pixels). Deterministic from --seed.

    Example: edgecnn data shapes --out data/shapes --n 2000 --size 64 --seed 1
    """
    from edgecnn.train.shapes import write_shapes

    with Progress(n, "shapes") as bar:
        info = write_shapes(out, n, size, seed, task, on_image=bar.update)
    what = "ImageFolder" if task == "classify" else "images + COCO JSON"
    typer.echo(f"wrote {info['images']:,} {size}x{size} images ({info['train']:,} train / {info['val']:,} val, "
               f"{what}), classes {', '.join(info['classes'])}, seed {seed} -> {out}")


@data_app.command("mnist")
def mnist_cmd(
    out: Path = typer.Option(Path("data/mnist"), "--out", "-o", help="Folder for the four IDX files."),
    mirror: list[str] = typer.Option(None, "--mirror", help="Base URL to fetch from instead of the public "
                                                            "mirrors (repeatable)."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait for a mirror."),
) -> None:
    """Download MNIST (60,000 train + 10,000 test digits) as IDX files; 'edgecnn train --data DIR'
    reads them, with the test set as the validation split. Needs a network connection.

    Example: edgecnn data mnist --out data/mnist
    """
    from edgecnn.train.datasets import MNIST_MIRRORS, download_mnist

    def report(name: str, source: str) -> None:
        typer.echo(f"{name}: {'already there' if source == 'present' else 'from ' + source}")

    paths = download_mnist(out, mirror or MNIST_MIRRORS, timeout, on_file=report)
    typer.echo(f"MNIST in {out} ({len(paths)} files); train with: edgecnn train lenet5 --data {out}")
