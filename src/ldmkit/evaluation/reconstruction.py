"""Reconstruction quality of an autoencoder on held-out data: PSNR, SSIM, rFID and throughput."""

import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ldmkit.autoencoder import Autoencoder
from ldmkit.data.collate import collate
from ldmkit.images import image_grid
from ldmkit.metrics.distribution_distance import fid_from_features
from ldmkit.metrics.feature_network import FeatureNetwork, feature_device
from ldmkit.metrics.image_quality import psnr, ssim
from ldmkit.progress import progress


@torch.no_grad()
def evaluate_reconstruction(
    model: Autoencoder,
    dataset: Dataset[dict[str, Any]],
    n: int,
    batch_size: int = 64,
    features: FeatureNetwork | None = None,
    grid: Path | None = None,
    grid_count: int = 8,
) -> dict[str, float]:
    """Mean/std PSNR and SSIM over the first `n` items, plus encode/decode images per second.

    With a feature network (an evaluator, or the FID InceptionV3), also rFID: the FID between
    the originals and their reconstructions in its feature space (n >= 2). With `grid`, a PNG
    of `grid_count` originals spread evenly over the `n` (top row) over their reconstructions.
    """
    n = min(n, len(dataset))  # type: ignore[arg-type]
    if n < 1:
        raise ValueError("evaluation needs at least one image; pass --n >= 1")
    device = model.latent_scale.device
    model.eval()
    psnrs, ssims, real_features, rec_features = [], [], [], []
    count = min(grid_count, n)
    picked = [k * n // count for k in range(count)]  # distinct: n / count >= 1
    originals: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []
    encode_s = decode_s = 0.0
    for start in progress(range(0, n, batch_size), "evaluating reconstruction"):
        items = [dataset[i] for i in range(start, min(n, start + batch_size))]
        x = collate(items)["image"].to(device)
        t0 = time.perf_counter()
        z = model.encode(x).mode()
        t1 = time.perf_counter()
        x_rec = model.decode(z).clamp(-1, 1)
        t2 = time.perf_counter()
        encode_s += t1 - t0
        decode_s += t2 - t1
        psnrs.append(psnr(x_rec, x))
        rows = [i - start for i in picked if start <= i < start + len(x)]
        if grid is not None and rows:
            originals.append(x[rows].float().cpu())
            outputs.append(x_rec[rows].float().cpu())
        if features is not None:
            real_features.append(features.embed(x.to(feature_device(features))).cpu())
            rec_features.append(features.embed(x_rec.to(feature_device(features))).cpu())
        ssims.append(
            ssim(x_rec, x) if min(x.shape[-2:]) >= 11 else torch.full((len(x),), float("nan"))
        )
    p, s = torch.cat(psnrs), torch.cat(ssims)
    if grid is not None:
        top, bottom = torch.cat(originals), torch.cat(outputs)
        grid.parent.mkdir(parents=True, exist_ok=True)
        image_grid(torch.cat([top, bottom]), nrow=len(top)).save(grid)
    extra = {}
    if features is not None and n >= 2:
        extra["rfid"] = fid_from_features(torch.cat(real_features), torch.cat(rec_features))
    return {
        "n": n,
        "psnr": float(p.mean()),
        "psnr_std": float(p.std()) if n > 1 else 0.0,
        "psnr_median": float(p.median()),  # flat images' near-infinite PSNRs move the mean
        "ssim": float(s.mean()),
        "ssim_std": float(s.std()) if n > 1 else 0.0,
        "encode_images_per_s": n / encode_s,
        "decode_images_per_s": n / decode_s,
        **extra,
    }
