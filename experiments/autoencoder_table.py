"""Train KL/VQ f=4/f=8 autoencoders on a fixed step budget and tabulate held-out quality.

    python experiments/autoencoder_table.py --minutes 10 --out runs/ae_table

Runs one after another (never in parallel: the timings would lie), evaluates each on 512
held-out 64x64 shapes and records the figures in OUT/table.json, keeping the rows of presets run
earlier. The table in the report (docs/results/autoencoders.md) lies between two marker lines and
is the only part rewritten; the prose around it is kept.
"""

import argparse
import dataclasses
import json
import platform
from pathlib import Path

import torch

from ldmkit.assets import SHAPES_EVALUATOR
from ldmkit.checkpoint import load_autoencoder, load_evaluator
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset
from ldmkit.evaluation.reconstruction import evaluate_reconstruction
from ldmkit.training.autoencoder_trainer import train_autoencoder
from ldmkit.training.presets import PRESETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--presets", nargs="+", default=["kl-f4", "kl-f8", "vq-f4", "vq-f8"])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("runs/ae_table"))
    parser.add_argument("--report", type=Path, default=Path("docs/results/autoencoders.md"))
    args = parser.parse_args()

    table_json = args.out / "table.json"
    earlier = json.loads(table_json.read_text()) if table_json.exists() else []
    rows = [r for r in earlier if r["preset"] not in args.presets]
    heldout = build_dataset(DataConfig(resolution=64, cache=False), "heldout", args.n)
    evaluator = load_evaluator(SHAPES_EVALUATOR)  # rFID in its feature space
    for name in args.presets:
        preset = PRESETS[name]
        # The preset's step count (its cosine LR schedule spans it); minutes is a safety cap.
        run = dataclasses.replace(preset.run, max_minutes=args.minutes)
        result = train_autoencoder(
            dataclasses.replace(preset, run=run), args.out / name, resume=False
        )
        model = load_autoencoder(result.model_dir)
        metrics = evaluate_reconstruction(model, heldout, args.n, features=evaluator)
        params = sum(p.numel() for p in model.parameters())
        rows.append(
            {
                "preset": name,
                "params": params,
                "steps": result.step,
                "minutes": result.elapsed_s / 60,
                **metrics,
            }
        )
        print(json.dumps(rows[-1]), flush=True)

    table_json.write_text(json.dumps(rows, indent=2))
    write_report(args.report, table_lines(rows, args.n, table_json))
    print(args.report.read_text())


BEGIN = "<!-- autoencoder_table.py: begin -->"
END = "<!-- autoencoder_table.py: end -->"


def table_lines(rows: list[dict], n: int, table_json: Path) -> list[str]:
    lines = [
        BEGIN,
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"torch threads, torch {torch.__version__}. Held-out: {n} shapes images (seed 1).",
        "Command: `python experiments/autoencoder_table.py --presets PRESET`, one row per preset",
        f"(rows of presets run earlier are kept in {table_json}).",
        "",
        "rFID: FID between the held-out images and their reconstructions in the shipped shapes",
        "evaluator's features (comparable within this table only).",
        "",
        "| preset | params | steps | train min | PSNR dB | SSIM | rFID | encode img/s | "
        "decode img/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        rfid = r.get("rfid", float("nan"))  # rows recorded before rFID existed have none
        lines.append(
            f"| {r['preset']} | {r['params'] / 1e6:.2f}M | {r['steps']} | {r['minutes']:.1f} | "
            f"{r['psnr']:.2f} ± {r['psnr_std']:.2f} | {r['ssim']:.4f} | {rfid:.1f} | "
            f"{r['encode_images_per_s']:.0f} | {r['decode_images_per_s']:.0f} |"
        )
    return [*lines, END]


def write_report(report: Path, table: list[str]) -> None:
    """Replace the marked table in `report`, or start the report with a title and the table."""
    text = report.read_text() if report.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + "\n".join(table) + tail
    else:
        title = "# Autoencoders on 64x64 shapes: each preset's step budget, capped in minutes"
        text = "\n".join([title, "", *table, "", text]).rstrip() + "\n"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(text)


if __name__ == "__main__":
    main()
