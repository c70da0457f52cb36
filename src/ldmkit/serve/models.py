"""The models a server holds, each loaded once and kept: its name, file, hash, what requests it
takes, and a cheap latent preview (a linear map from latent channels to colours, fitted at load
on the autoencoder's own encodings, so a preview costs no decoder pass)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from ldmkit.assets import SHAPES_TEXT_TO_IMAGE
from ldmkit.generation import model_inputs, model_name
from ldmkit.images import to_uint8
from ldmkit.interop.load import load
from ldmkit.interop.model_hash import model_hash
from ldmkit.pipeline import LatentDiffusion

PREVIEW_SIDE = 256  # pixels, the longer side


class LatentPreview:
    """Latent (c, h, w) -> a small RGB picture, by least squares on encoded colour fields."""

    def __init__(self, model: LatentDiffusion):
        f, c = model.autoencoder.factor, model.config.unet.out_channels
        generator = torch.Generator().manual_seed(0)
        coarse = torch.rand(8, 3, 4, 4, generator=generator) * 2 - 1
        images = F.interpolate(coarse, size=(16 * f, 16 * f), mode="bilinear")
        with torch.no_grad():
            z = model.encode(images.to(model.device)).float().cpu()
        pixels = F.interpolate(images, size=z.shape[-2:], mode="area")
        x = torch.cat([z.permute(0, 2, 3, 1).reshape(-1, c), torch.ones(z[:, 0].numel(), 1)], 1)
        y = pixels.permute(0, 2, 3, 1).reshape(-1, 3)
        self.weights = torch.linalg.lstsq(x, y).solution  # (c + 1, 3)
        self.channels = c

    def __call__(self, z: torch.Tensor) -> Image.Image:
        """The first sample of a latent batch (B, c, h, w) as a picture."""
        latent = z[0].detach().float().cpu()
        h, w = latent.shape[-2:]
        flat = torch.cat([latent.reshape(self.channels, -1).T, torch.ones(h * w, 1)], 1)
        rgb = (flat @ self.weights).T.reshape(1, 3, h, w)
        scale = PREVIEW_SIDE / max(h, w)
        rgb = F.interpolate(rgb, scale_factor=scale, mode="nearest") if scale > 1 else rgb
        return Image.fromarray(to_uint8(rgb)[0])


@dataclass
class ServedModel:
    name: str
    checkpoint: Path
    hash: str
    model: LatentDiffusion
    preview: LatentPreview

    def describe(self) -> dict[str, Any]:
        """What `GET /v1/models` says of it: the request fields it takes, its sizes, classes."""
        m = self.model
        side = m.config.latent_size * m.autoencoder.factor
        kinds = [c.description for c in m.conditioners]
        if m.spatial is not None:
            kinds = [k for k in kinds if k != "conditioned on a spatial input"]
            kinds.append(m.spatial.kind.replace("_", "-"))
        return {
            "name": self.name,
            "kind": ", ".join(kinds) or "unconditional",
            "hash": self.hash,
            "inputs": model_inputs(m),
            "size": side,
            "multiple_of": m.autoencoder.factor,
            "classes": m.num_classes,
            "spatial": m.spatial.kind if m.spatial is not None else None,
            "default_guidance": m.default_guidance,
        }


def default_checkpoints() -> tuple[Path, ...]:
    """What a server with no --checkpoint serves: the shipped text-to-image model."""
    return (SHAPES_TEXT_TO_IMAGE,)


def served_names(checkpoints: tuple[Path, ...]) -> list[str]:
    """A name for each checkpoint, unique among them (the file's or run's name)."""
    names: list[str] = []
    for checkpoint in checkpoints:
        name = model_name(checkpoint)
        names.append(f"{name}-{len(names)}" if name in names else name)
    return names


def load_models(checkpoints: tuple[Path, ...], device: torch.device) -> dict[str, ServedModel]:
    """Every checkpoint loaded, by its name (`served_names`)."""
    served: dict[str, ServedModel] = {}
    for name, checkpoint in zip(served_names(checkpoints), checkpoints, strict=True):
        model = load(checkpoint, device)
        model.unet.eval()
        served[name] = ServedModel(
            name, Path(checkpoint), model_hash(checkpoint), model, LatentPreview(model)
        )
    return served
