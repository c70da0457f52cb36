"""`ldmkit serve`: the HTTP API and web page over one or more models."""

import os
from pathlib import Path
from typing import Annotated

import typer

from ldmkit.cli.common import Device, app, checked, fail


@app.command("serve")
def serve_command(
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(help="A model to serve (repeat for several; default: the shipped one)"),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind (other than loopback: --token)")] = (
        "127.0.0.1"
    ),
    port: int = 7860,
    token: Annotated[
        str | None,
        typer.Option(help="Bearer token every API call must carry (or LDMKIT_TOKEN)"),
    ] = None,
    data: Annotated[
        Path, typer.Option(help="Folder of the job database, uploads and images")
    ] = Path("runs/serve"),
    cors_origin: Annotated[
        list[str] | None, typer.Option(help="Allow browser calls from this origin (repeat)")
    ] = None,
    max_steps: Annotated[int, typer.Option(help="Most steps one job may ask")] = 150,
    max_side: Annotated[int, typer.Option(help="Largest width or height, pixels")] = 2048,
    max_count: Annotated[int, typer.Option(help="Most images one job may ask")] = 8,
    queue_size: Annotated[int, typer.Option(help="Jobs that may wait; more get 429")] = 32,
    preview: Annotated[
        str, typer.Option(help="Previews: approx (a linear colour map, free) or vae (decoded)")
    ] = "approx",
    preview_every: Annotated[int, typer.Option(help="Steps between previews")] = 5,
    lora_dir: Annotated[
        Path | None,
        typer.Option(help="Offer its NAME.safetensors LoRAs per job (<lora:NAME:0.8> in a prompt)"),
    ] = None,
    device: Device = "auto",
) -> None:
    """Serve models over HTTP: a job queue (POST /v1/jobs), progress and previews as
    server-sent events, cancel, stored images with their parameters, and a web page at /.
    API docs at /docs."""
    from ldmkit.inputs import InputError, check_count, check_writable_folder
    from ldmkit.serve.config import TOKEN_VARIABLE, Limits, ServeConfig

    checked(
        lambda: check_writable_folder("--data", data),
        *(lambda n=n, v=v: check_count(n, v) for n, v in (("--max-steps", max_steps),
          ("--max-side", max_side), ("--max-count", max_count), ("--queue-size", queue_size))),
    )  # fmt: skip
    for path in checkpoint or []:
        if not path.exists():
            raise fail(f"--checkpoint {path} does not exist")
    try:
        config = ServeConfig(
            checkpoints=tuple(checkpoint or ()),
            data=data,
            host=host,
            port=port,
            token=token or os.environ.get(TOKEN_VARIABLE) or None,
            cors_origins=tuple(cors_origin or ()),
            device=device,
            preview=preview,
            preview_every=preview_every,
            lora_dir=lora_dir,
            limits=Limits(
                max_steps=max_steps, max_side=max_side, max_count=max_count, queue_size=queue_size
            ),
        )
    except InputError as error:
        raise fail(str(error)) from error
    import uvicorn

    from ldmkit.serve import create_app

    typer.echo(f"ldmkit serve: http://{host}:{port}/ (API docs at /docs); Ctrl-C stops")
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning")
