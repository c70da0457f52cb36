"""The `ldmkit` command line."""

import typer

app = typer.Typer(no_args_is_help=True, help="Latent Diffusion Models: train, sample, evaluate.")


def main() -> None:
    """Entry point of the `ldmkit` console script."""
    app()
