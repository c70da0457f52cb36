"""Guidance-scale and sampler-steps sweeps of a class-conditional checkpoint (FID, KID, adherence).

    python experiments/sweeps.py --checkpoint runs/ldm-shapes/model --n 300

Every point samples the same `n` class labels with the same seeds; real held-out features are
computed once. Writes `docs/results/sweeps.md`, `sweep_guidance.png` and `sweep_steps.png` (and
`sweeps.json` beside them).
"""

import argparse
import json
import time
from pathlib import Path

import torch

from ldmkit.assets import SHAPES_EVALUATOR
from ldmkit.checkpoint import load_evaluator, load_latent_diffusion, training_data
from ldmkit.data.factory import build_dataset
from ldmkit.evaluation.adherence import score_adherence
from ldmkit.evaluation.fid import dataset_features, distribution_scores
from ldmkit.evaluation.generate import embed, generate
from ldmkit.samplers import SamplingOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--evaluator", type=Path, default=SHAPES_EVALUATOR)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0, 3.0, 5.0, 8.0])
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 50])
    parser.add_argument("--samplers", nargs="+", default=["ddim", "plms", "dpm++2m"])
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    args = parser.parse_args()

    model = load_latent_diffusion(args.checkpoint)
    evaluator = load_evaluator(args.evaluator)
    heldout = build_dataset(training_data(args.checkpoint), "heldout", args.n)
    real = dataset_features(evaluator, heldout, args.n)
    done: dict[tuple[str, int, float], dict] = {}

    def point(sampler: str, steps: int, guidance: float) -> dict:
        key = (sampler, steps, guidance)
        if key not in done:
            options = SamplingOptions(sampler, steps, guidance)
            images, labels, seconds = generate(model, args.n, options)
            scores = score_adherence(evaluator, images, labels)
            done[key] = {
                "sampler": sampler,
                "steps": steps,
                "guidance": guidance,
                **distribution_scores(real, embed(evaluator, images)),
                **{f"adherence_{k}": v for k, v in scores.items()},
                "seconds_per_image": seconds / args.n,
            }
            print(json.dumps(done[key]), flush=True)
        return done[key]

    started = time.perf_counter()
    by_guidance = [point("ddim", 50, g) for g in args.guidance]
    by_steps = [point(s, k, 3.0) for s in args.samplers for k in args.steps]
    minutes = (time.perf_counter() - started) / 60
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sweeps.json").write_text(json.dumps(list(done.values()), indent=2))
    _plots(by_guidance, by_steps, args)
    _report(by_guidance, by_steps, args, minutes)


def _plots(by_guidance: list[dict], by_steps: list[dict], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, left = plt.subplots(figsize=(5.5, 3.5))
    scales = [p["guidance"] for p in by_guidance]
    left.plot(scales, [p["fid"] for p in by_guidance], "o-", color="tab:blue")
    left.set_xlabel("guidance scale (DDIM, 50 steps)")
    left.set_ylabel("FID (evaluator features)", color="tab:blue")
    right = left.twinx()
    right.plot(scales, [100 * p["adherence_both"] for p in by_guidance], "s--", color="tab:red")
    right.set_ylabel("adherence, kind and colour (%)", color="tab:red")
    fig.tight_layout()
    fig.savefig(args.out / "sweep_guidance.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for sampler in args.samplers:
        rows = [p for p in by_steps if p["sampler"] == sampler]
        ax.plot([p["steps"] for p in rows], [p["fid"] for p in rows], "o-", label=sampler)
    ax.set_xscale("log")
    ax.set_xticks(args.steps, [str(k) for k in args.steps])
    ax.set_xlabel("sampling steps (guidance 3)")
    ax.set_ylabel("FID (evaluator features)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "sweep_steps.png", dpi=120)
    plt.close(fig)


def _report(
    by_guidance: list[dict], by_steps: list[dict], args: argparse.Namespace, minutes: float
) -> None:
    def row(p: dict) -> str:
        return (
            f"| {p['sampler']} | {p['steps']} | {p['guidance']:g} | {p['fid']:.2f} | "
            f"{p['kid']:.3f} ± {p['kid_std']:.3f} | {100 * p['adherence_both']:.1f}% | "
            f"{p['seconds_per_image']:.3f} |"
        )

    header = [
        "| sampler | steps | guidance | FID | KID | adherence (both) | s / image |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines = [
        "# Sweeps: guidance scale and sampler steps",
        "",
        f"Checkpoint `{args.checkpoint}`, {args.n} samples per point (classes cycled, the same "
        "seeds at every point) against as many held-out images, in the shipped shapes "
        f"evaluator's features. {minutes:.1f} min on this CPU. Command: "
        f"`python experiments/sweeps.py --checkpoint {args.checkpoint} --n {args.n}`",
        "",
        "## Guidance scale",
        "",
        "![FID and adherence against guidance](sweep_guidance.png)",
        "",
        *header,
        *[row(p) for p in by_guidance],
        "",
        "## Sampler steps",
        "",
        "![FID against steps](sweep_steps.png)",
        "",
        *header,
        *[row(p) for p in by_steps],
        "",
    ]
    (args.out / "sweeps.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
