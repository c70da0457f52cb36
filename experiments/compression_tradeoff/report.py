"""Write docs/results/compression_tradeoff.md and its plots from OUT/results.json.

python experiments/compression_tradeoff/report.py --out runs/compression_tradeoff
"""

import argparse
import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

ANALYSIS = Path(__file__).with_name("analysis.md")  # the reading of the latest run, by hand


def _plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted(results["runs"].values(), key=lambda r: r["factor"])
    floor = results["fid_floor"]["fid"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for run in runs:
        label = f"f={run['factor']}" + (" (pixels)" if run["factor"] == 1 else "")
        evals = run.get("evals", [])
        axes[0].plot([e["step"] for e in evals], [e["fid"] for e in evals], "o-", label=label)
        axes[1].plot(
            [e["train_s"] / 60 for e in evals], [e["fid"] for e in evals], "o-", label=label
        )
        points = sorted(run.get("throughput", []) + evals[-1:], key=lambda s: s["images_per_s"])
        axes[2].plot(
            [s["images_per_s"] for s in points], [s["fid"] for s in points], "o-", label=label
        )
        for s in points:
            axes[2].annotate(str(s["sample_steps"]), (s["images_per_s"], s["fid"]), fontsize=7)
    titles = (
        ("FID against training steps", "training step"),
        ("FID against training wall-clock", "training minutes (this CPU)"),
        ("FID against sampling throughput (DDIM steps marked)", "images / s (this CPU, log)"),
    )
    for ax, (title, xlabel) in zip(axes, titles, strict=True):
        ax.axhline(floor, color="grey", ls=":", lw=1, label="real vs real")
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("FID (evaluator features, log)")
        ax.grid(alpha=0.3, which="both")
    axes[2].set_xscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _samples(results: dict[str, Any], out: Path, path: Path) -> None:
    """The final checkpoints' sample grids, one labelled panel per factor, side by side."""
    panels = []
    for run in sorted(results["runs"].values(), key=lambda r: r["factor"]):
        evals = run.get("evals", [])
        grid = (
            out / f"ldm-f{run['factor']}" / f"grid-{evals[-1]['step']:05d}.png" if evals else None
        )
        if grid is None or not grid.exists():
            continue
        image = Image.open(grid).convert("RGB")
        panel = Image.new("RGB", (image.width, image.height + 18), "white")
        panel.paste(image, (0, 18))
        ImageDraw.Draw(panel).text((4, 3), f"f={run['factor']}", fill="black")
        panels.append(panel)
    if not panels:
        return
    columns = 3
    width, height = max(p.width for p in panels), max(p.height for p in panels)
    rows = -(-len(panels) // columns)
    canvas = Image.new("RGB", (columns * (width + 8), rows * (height + 8)), "white")
    for i, panel in enumerate(panels):
        r, c = divmod(i, columns)
        canvas.paste(panel, (c * (width + 8), r * (height + 8)))
    canvas.save(path)


def _reconstructions(results: dict[str, Any], out: Path, path: Path) -> None:
    """Each first stage's held-out reconstruction grid (top: originals), stacked by factor."""
    rows = []
    for run in sorted(results["runs"].values(), key=lambda r: r["factor"]):
        grid = out / f"ae-f{run['factor']}" / "reconstructions.png"
        if grid.exists():
            image = Image.open(grid).convert("RGB")
            row = Image.new("RGB", (image.width + 40, image.height), "white")
            row.paste(image, (40, 0))
            ImageDraw.Draw(row).text((4, image.height // 2), f"f={run['factor']}", fill="black")
            rows.append(row)
    if rows:
        canvas = Image.new(
            "RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white"
        )
        y = 0
        for row in rows:
            canvas.paste(row, (0, y))
            y += row.height
        canvas.save(path)


def write_report(results: dict[str, Any], out: Path, report: Path) -> None:
    """The Markdown table and the plots, next to `report`; a copy of the JSON beside them."""
    report.parent.mkdir(parents=True, exist_ok=True)
    stem = report.with_suffix("")
    plot, samples = Path(f"{stem}.png"), Path(f"{stem}_samples.png")
    recs = Path(f"{stem}_reconstructions.png")
    _plot(results, plot)
    _samples(results, out, samples)
    _reconstructions(results, out, recs)
    Path(f"{stem}.json").write_text(json.dumps(results, indent=2))
    s = results["settings"]
    objects = s.get("ae_objects", "single")  # the first run predates the option
    command = (
        f"python experiments/compression_tradeoff/run.py --ae-steps {s['ae_steps']} "
        f"--ae-objects {objects} --ldm-steps {s['ldm_steps']}"
    )
    floor = results["fid_floor"]
    lines = [
        "# The compression trade-off at laptop scale (paper Figs. 6-7)",
        "",
        f"Command: `{command}` (autoencoders: {s['ae_steps']} steps on {objects}-object images; "
        "diffusion models "
        f"UNet width {s['width']}, batch {s['batch']}, {s['ldm_steps']} steps, "
        f"{results.get('precision', 'bf16')}; "
        f"{s['n']} samples per evaluation, DDIM {s['sample_steps']} steps, no guidance). "
        f"Machine: {results['machine']}. Report only: "
        "`python experiments/compression_tradeoff/report.py`.",
        "",
        "Data: class-conditional 64x64 single-object shapes (30 classes). FID/KID: in the shipped "
        "shapes evaluator's features, against 1000 held-out images; real-vs-real at the same n: "
        f"FID {floor['fid']:.2f}, KID {floor['kid']:.4f}. Adherence: kind and colour both right.",
        "",
        f"![FID against steps, wall-clock and throughput]({plot.name})",
        "",
        "| f | latent | first stage PSNR dB / rFID | its training min | UNet params | "
        "FID at each evaluation (step) | final KID | adherence | LDM training min | "
        "sampling img/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    caveats = []
    for run in sorted(results["runs"].values(), key=lambda r: r["factor"]):
        f, evals = run["factor"], run.get("evals", [])
        if not evals:
            continue
        ae = run.get("autoencoder")
        latent = "3x64x64 (pixels)" if ae is None else "x".join(map(str, ae["latent"]))
        quality = "lossless" if ae is None else f"{ae['psnr']:.2f} / {ae['rfid']:.1f}"
        ae_min = "-" if ae is None else f"{ae['train_s'] / 60:.1f}"
        if ae is not None and ae.get("timing_caveat"):  # recorded by hand in results.json
            mark = f"[{'abcdefgh'[len(caveats)]}]"
            ae_min += f" {mark}"
            caveats.append(f"{mark} f={f}: {ae['timing_caveat']}")
        fids = ", ".join(f"{e['fid']:.1f} ({e['step']})" for e in evals)
        last = evals[-1]
        lines.append(
            f"| {f} | {latent} | {quality} | {ae_min} | {run['unet_params'] / 1e6:.2f}M | {fids} | "
            f"{last['kid']:.3f} | {100 * last['both']:.1f}% | {last['train_s'] / 60:.1f} | "
            f"{last['images_per_s']:.1f} |"
        )
    lines += ["", *(f"{c}  " for c in caveats)] if caveats else []
    lines += [
        "",
        "FID against sampling cost (final models, DDIM steps):",
        "",
        "| f | " + " | ".join(f"DDIM {k}: FID / img/s" for k in _steps(results)) + " |",
        "| --- |" + " --- |" * len(_steps(results)),
    ]
    for run in sorted(results["runs"].values(), key=lambda r: r["factor"]):
        by_steps = {
            x["sample_steps"]: x for x in run.get("throughput", []) + run.get("evals", [])[-1:]
        }
        cells = [
            f"{by_steps[k]['fid']:.1f} / {by_steps[k]['images_per_s']:.1f}"
            if k in by_steps
            else "-"
            for k in _steps(results)
        ]
        lines.append(f"| {run['factor']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"![final samples, first 30 (one per class)]({samples.name})",
        "",
        "The first stages on held-out images (in each pair of rows: originals, reconstructions):",
        "",
        f"![autoencoder reconstructions by factor]({recs.name})",
        "",
    ]
    if ANALYSIS.exists():
        lines += [ANALYSIS.read_text().strip(), ""]
    report.write_text("\n".join(lines))


def _steps(results: dict[str, Any]) -> list[int]:
    s = results["settings"]
    return sorted({*s["throughput_steps"], s["sample_steps"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/compression_tradeoff"))
    parser.add_argument("--report", type=Path, default=Path("docs/results/compression_tradeoff.md"))
    args = parser.parse_args()
    write_report(json.loads((args.out / "results.json").read_text()), args.out, args.report)


if __name__ == "__main__":
    main()
