"""`ldmkit inspect IMAGE.png`: the generation parameters an image carries."""

import json
from pathlib import Path
from typing import Annotated

import typer

from ldmkit.cli.common import app, checked
from ldmkit.image_parameters import read_parameters


@app.command("inspect")
def inspect_command(
    image: Annotated[Path, typer.Argument(help="A PNG written by ldmkit or a web UI")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Only ldmkit's JSON record, on one line")
    ] = False,
) -> None:
    """Print the parameters an image records: the web UIs' text, then ldmkit's full record
    (`ldmkit sample --from IMAGE.png` reruns it)."""
    found: list[tuple[dict | None, str | None]] = []
    checked(lambda: found.append(read_parameters(image)))
    recorded, webui = found[0]
    if as_json:
        typer.echo(json.dumps(recorded))
        return
    if webui is not None:
        typer.echo(webui)
    if recorded is not None:
        if webui is not None:
            typer.echo("")
        typer.echo(json.dumps(recorded, indent=2))
