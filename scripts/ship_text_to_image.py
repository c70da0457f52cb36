"""Make the shipped text-to-image checkpoint (`src/ldmkit/assets/shapes_t2i`) from a trained run.

    ldmkit train --preset shapes-text --autoencoder src/ldmkit/assets/shapes_kl_f4 --out runs/t2i \
        --set run.steps=1500 --set run.sample_every=500 --set run.sample_count=8
    python scripts/ship_text_to_image.py --run runs/t2i

The UNet and text encoder are stored in float16 (the asset stays under 25 MB). The stored model's
adherence is measured as `ldmkit eval adherence` measures it (n=300, DDIM 50, guidance 3) and in
the quick setting the test suite repeats (`CHECK`), and both are recorded in its config.json with
the command and seed that trained it.
"""

import argparse
import json
import tempfile
from pathlib import Path

from ldmkit.assets import SHAPES_EVALUATOR, SHAPES_TEXT_TO_IMAGE
from ldmkit.checkpoint import (
    load_evaluator,
    load_latent_diffusion,
    read_config,
    save_latent_diffusion,
)
from ldmkit.config import load_yaml
from ldmkit.evaluation.adherence import evaluate_adherence
from ldmkit.samplers import SamplingOptions

CHECK = {"n": 60, "guidance": 3.0, "sampler": "ddim", "steps": 20}


KEPT = ("n", "guidance", "sampler", "steps", "kind", "color", "both")


def adherence(model_dir: Path, n: int, guidance: float, sampler: str, steps: int) -> dict:
    """`ldmkit eval adherence` of the model in `model_dir`, the recorded fields."""
    model = load_latent_diffusion(model_dir)
    evaluator = load_evaluator(SHAPES_EVALUATOR)
    scores = evaluate_adherence(model, evaluator, n, SamplingOptions(sampler, steps, guidance))
    return {key: scores[key] for key in KEPT}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/t2i"))
    parser.add_argument("--out", type=Path, default=SHAPES_TEXT_TO_IMAGE)
    args = parser.parse_args()
    source = args.run / "model"
    training = read_config(source, "latent-diffusion")["training"]
    run = load_yaml(args.run / "config.yaml")["run"]
    recipe = {
        "preset": "shapes-text",
        "seed": run["seed"],
        "sample_every": 500,
        "sample_count": 8,
        "command": (
            "ldmkit train --preset shapes-text --autoencoder src/ldmkit/assets/shapes_kl_f4 "
            f"--out runs/t2i --set run.steps={training['steps']} --set run.sample_every=500 "
            "--set run.sample_count=8"
        ),
    }
    model = load_latent_diffusion(source)
    with tempfile.TemporaryDirectory() as tmp:
        staged = save_latent_diffusion(model, Path(tmp) / "model", half=True)
        full = adherence(staged, 300, 3.0, "ddim", 50)
        check = adherence(staged, **CHECK)
    extra = {"training": {**training, **recipe}, "adherence": full, "check": check}
    save_latent_diffusion(model, args.out, extra=extra, half=True)
    print(json.dumps({"out": str(args.out), **extra}, indent=2))


if __name__ == "__main__":
    main()
