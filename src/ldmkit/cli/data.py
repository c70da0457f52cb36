"""`ldmkit data ...`: prepare the offline real datasets, write a folder as shards, index
shards another tool wrote."""

import json
import tarfile
from pathlib import Path
from typing import Annotated

import typer

from ldmkit.cli.common import checked, data_app, fail
from ldmkit.inputs import check_count, check_writable_folder


@data_app.command("prepare")
def data_prepare_command(
    name: Annotated[str, typer.Argument(help="fashion-mnist or emoji")],
    out: Annotated[Path | None, typer.Option(help="Default: data/NAME")] = None,
) -> None:
    """Prepare a real dataset from its offline Debian package into data/NAME."""
    from ldmkit.data.prepare import DATASETS, prepare_dataset

    if name not in DATASETS:
        raise fail(f"unknown dataset {name!r}; datasets: {', '.join(DATASETS)}")
    try:
        path = prepare_dataset(name, out or Path("data") / name)
    except (FileNotFoundError, ValueError) as error:
        raise fail(str(error)) from error
    typer.echo(str(path))


@data_app.command("shards")
def data_shards_command(
    folder: Annotated[Path, typer.Argument(help="Image folder (captions or class sub-folders)")],
    out: Annotated[Path, typer.Argument(help="Folder for the tar shards and index.json")],
    per_shard: Annotated[int, typer.Option(help="Samples per shard")] = 1000,
    heldout_fraction: Annotated[
        float, typer.Option(help="Files held out (by a hash of each name), as in training")
    ] = 0.05,
    seed: Annotated[int, typer.Option(help="The split's seed (data.seed)")] = 0,
) -> None:
    """Write an image folder as WebDataset tar shards (image, caption, label, size) with an
    index; train on them with --data shards:OUT (read by index), adding --set data.stream=true
    to read them in sequence, and --set data.shard_url=URL when the shards are moved (e.g.
    'pipe:aws s3 cp s3://bucket/set/{shard} -'). Unreadable files are counted, not written."""
    checked(
        lambda: check_count("--per-shard", per_shard),
        lambda: check_writable_folder("--out", out.parent if not out.exists() else out),
    )
    if not 0.0 <= heldout_fraction < 1.0:
        raise typer.BadParameter(
            f"{heldout_fraction} is not in [0, 1); 0.05 holds out one file in twenty",
            param_hint="--heldout-fraction",
        )
    from ldmkit.data.shards import write_shards
    from ldmkit.data.spec import data_fields

    try:
        source = Path(data_fields(str(folder), "FOLDER")["path"])
        index = write_shards(source, out, heldout_fraction, seed, per_shard)
    except (ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from error
    splits = index["splits"]
    summary = {name: len(samples) for name, samples in splits.items()}
    shards = sorted({s["shard"] for samples in splits.values() for s in samples})
    typer.echo(
        json.dumps(
            {
                "out": str(out),
                "shards": len(shards),
                **summary,
                "skipped": sum(len(lines) for lines in index["skipped"].values()),
            }
        )
    )


@data_app.command("index")
def data_index_command(
    shards: Annotated[
        str,
        typer.Argument(
            help="A folder of WebDataset .tar shards, or a pattern: 'DIR/{00000..00099}.tar'"
        ),
    ],
    out: Annotated[Path, typer.Argument(help="Folder for index.json (the shards stay)")],
    heldout_fraction: Annotated[
        float, typer.Option(help="Samples held out (by a hash of each key), as in training")
    ] = 0.05,
    seed: Annotated[int, typer.Option(help="The split's seed (data.seed)")] = 0,
    check: Annotated[
        bool, typer.Option(help="Decode every image once; unreadable ones are left out")
    ] = True,
) -> None:
    """Index WebDataset shards another tool wrote (img2dataset and the like: KEY.jpg / .png
    with KEY.txt captions or KEY.cls labels) without rewriting them; train on them with
    --data shards:OUT, by index or with --set data.stream=true."""
    checked(lambda: check_writable_folder("OUT", out.parent if not out.exists() else out))
    if not 0.0 <= heldout_fraction < 1.0:
        raise typer.BadParameter(
            f"{heldout_fraction} is not in [0, 1); 0.05 holds out one sample in twenty",
            param_hint="--heldout-fraction",
        )
    from ldmkit.data.shard_index import find_tars, index_shards

    try:
        tars = find_tars(shards)
        index = index_shards(tars, out, heldout_fraction, seed, check)
    except (ValueError, OSError, tarfile.TarError) as error:
        raise fail(f"SHARDS {shards}: {error}") from error
    summary = {name: len(samples) for name, samples in index["splits"].items()}
    skipped = sum(len(lines) for lines in index["skipped"].values())
    typer.echo(json.dumps({"out": str(out), "shards": len(tars), **summary, "skipped": skipped}))
