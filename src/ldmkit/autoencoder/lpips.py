"""LPIPS perceptual distance over VGG16 features (Zhang et al. 2018), frozen, for the AE loss."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

__all__ = ["LPIPS", "LinearHead", "ScalingLayer", "load_state_dict_file", "vgg16_features"]

# torchvision's VGG16 ("configuration D", Simonyan & Zisserman 2015): conv widths, "M" = 2x2 pool.
_VGG16_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip
# Indices in `features` of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (the LPIPS taps).
VGG16_TAP_INDICES: tuple[int, ...] = (3, 8, 15, 22, 29)
VGG16_TAP_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)

DOWNLOAD_HELP = (
    "LPIPS needs two files: (1) torchvision's ImageNet VGG16 weights 'vgg16-397923af.pth' from "
    "the torchvision model zoo (https://download.pytorch.org/models/vgg16-397923af.pth), and "
    "(2) the linear heads 'lpips/weights/v0.1/vgg.pth' shipped in the `lpips` Python package "
    "(github.com/richzhang/PerceptualSimilarity). Either may be converted to .safetensors with "
    "the same keys. See docs/lpips.md."
)


def vgg16_features() -> nn.Sequential:
    """VGG16 convolutional trunk with torchvision's layer indices (features.N keys load as-is)."""
    layers: list[nn.Module] = []
    in_channels = 3
    for item in _VGG16_CONFIG:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            assert isinstance(item, int)
            layers.append(nn.Conv2d(in_channels, item, kernel_size=3, padding=1))
            # Not in-place: tapped activations must not be overwritten by later layers.
            layers.append(nn.ReLU(inplace=False))
            in_channels = item
    return nn.Sequential(*layers)


class ScalingLayer(nn.Module):
    """Maps [-1, 1] images to ImageNet-normalised VGG input, as the LPIPS package does."""

    shift: Tensor
    scale: Tensor

    def __init__(self) -> None:
        super().__init__()
        # LPIPS constants: ImageNet mean/std (0.485, 0.456, 0.406)/(0.229, 0.224, 0.225)
        # rewritten for [-1, 1] inputs, i.e. shift = 2 * mean - 1, scale = 2 * std.
        shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
        scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
        # Non-persistent: constants of the method, never part of a weight file.
        self.register_buffer("shift", shift, persistent=False)
        self.register_buffer("scale", scale, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Shift and scale each channel: (B, 3, H, W) -> (B, 3, H, W)."""
        return (x - self.shift) / self.scale


class LinearHead(nn.Module):
    """Learned non-negative 1x1 conv from C channels to one, key `model.1.weight` like `lpips`."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # Slot 0 holds Dropout in the `lpips` package (used only when training the heads); an
        # Identity keeps the `model.1.weight` key without dropout switching on under .train().
        conv = nn.Conv2d(channels, 1, kernel_size=1, bias=False)
        # Unit weights = the uncalibrated "sum over channels" baseline until real heads load.
        nn.init.ones_(conv.weight)
        self.model = nn.Sequential(nn.Identity(), conv)

    def forward(self, x: Tensor) -> Tensor:
        """Weighted channel sum: (B, C, H, W) -> (B, 1, H, W)."""
        return self.model(x)


def _unit_normalize(features: Tensor, eps: float = 1e-10) -> Tensor:
    """Scale each spatial feature vector to unit L2 norm over channels (Eq. 1, Zhang et al.)."""
    norm = features.square().sum(dim=1, keepdim=True).sqrt()  # (B, 1, H, W)
    return features / (norm + eps)


def load_state_dict_file(path: Path) -> dict[str, Tensor]:
    """Read a tensor state dict from .safetensors or a torch file (weights_only, never unsafe)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LPIPS weight file not found: '{path}'. {DOWNLOAD_HELP}")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as error:
            raise ValueError(
                f"'{path}' is not a readable safetensors file ({error}). {DOWNLOAD_HELP}"
            ) from error
    if path.suffix not in {".pth", ".pt", ".bin", ".ckpt"}:
        raise ValueError(
            f"Unknown weight file type '{path.suffix}' for '{path}'. "
            "Use a .safetensors file or a PyTorch state dict saved as .pth / .pt."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"'{path}' holds more than tensors, so it cannot be loaded safely "
            "(torch.load(weights_only=True) refused it). Re-save only the state dict with "
            "torch.save(model.state_dict(), path), or convert it to .safetensors."
        ) from error
    if not isinstance(state, Mapping) or not all(
        isinstance(key, str) and isinstance(value, Tensor) for key, value in state.items()
    ):
        raise ValueError(
            f"'{path}' does not hold a state dict (a mapping of names to tensors); got "
            f"{type(state).__name__}. Save it with torch.save(model.state_dict(), path)."
        )
    return dict(state)


def _describe_keys(keys: set[str], limit: int = 8) -> str:
    """Sorted, truncated key list for error messages."""
    ordered = sorted(keys)
    shown = ", ".join(ordered[:limit])
    return shown + (f", ... ({len(ordered) - limit} more)" if len(ordered) > limit else "")


def _check_keys_and_shapes(
    state: Mapping[str, Tensor], expected: Mapping[str, Tensor], path: Path, what: str
) -> None:
    """Raise a ValueError naming missing / unexpected keys and shape mismatches."""
    missing = set(expected) - set(state)
    unexpected = set(state) - set(expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_describe_keys(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_describe_keys(unexpected)}")
        raise ValueError(
            f"'{path}' is not a {what} state dict ({'; '.join(parts)}). {DOWNLOAD_HELP}"
        )
    for key, reference in expected.items():
        if state[key].shape != reference.shape:
            raise ValueError(
                f"'{path}': key '{key}' has shape {tuple(state[key].shape)}, expected "
                f"{tuple(reference.shape)}; this is not a {what} file. {DOWNLOAD_HELP}"
            )


def _vgg16_feature_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Keys of `features` alone, from a full torchvision vgg16 dict or a features-only one."""
    if any(key.startswith("features.") for key in state):
        return {
            key.removeprefix("features."): value
            for key, value in state.items()
            if not key.startswith("classifier.")  # the ImageNet classifier is unused by LPIPS
        }
    return dict(state)  # already the state dict of a `features` Sequential: "0.weight", ...


class LPIPS(nn.Module):
    """Learned Perceptual Image Patch Similarity, VGG16 variant: d(x, y) per image, (B,)."""

    def __init__(self) -> None:
        super().__init__()
        self.scaling = ScalingLayer()
        self.features = vgg16_features()
        self.lin0 = LinearHead(VGG16_TAP_CHANNELS[0])
        self.lin1 = LinearHead(VGG16_TAP_CHANNELS[1])
        self.lin2 = LinearHead(VGG16_TAP_CHANNELS[2])
        self.lin3 = LinearHead(VGG16_TAP_CHANNELS[3])
        self.lin4 = LinearHead(VGG16_TAP_CHANNELS[4])
        self.requires_grad_(False)  # a fixed metric: gradients reach the input, never the weights
        self.eval()

    @property
    def heads(self) -> tuple[LinearHead, ...]:
        """The five linear heads, shallowest first."""
        return (self.lin0, self.lin1, self.lin2, self.lin3, self.lin4)

    def train(self, mode: bool = True) -> LPIPS:
        """Stay in eval mode whatever the parent module asks; LPIPS is never trained here."""
        del mode
        return super().train(False)

    @classmethod
    def from_files(cls, vgg16_path: Path, lpips_path: Path) -> LPIPS:
        """Load torchvision VGG16 weights and `lpips` v0.1 VGG heads (.pth / .safetensors)."""
        vgg16_path, lpips_path = Path(vgg16_path), Path(lpips_path)
        model = cls()
        features = _vgg16_feature_keys(load_state_dict_file(vgg16_path))
        _check_keys_and_shapes(features, model.features.state_dict(), vgg16_path, "VGG16")
        heads = load_state_dict_file(lpips_path)
        expected_heads = {
            key: value for key, value in model.state_dict().items() if key.startswith("lin")
        }
        _check_keys_and_shapes(heads, expected_heads, lpips_path, "LPIPS VGG linear-head")
        negative = [key for key, value in heads.items() if bool((value < 0).any())]
        if negative:
            raise ValueError(
                f"'{lpips_path}': LPIPS heads must be non-negative (Zhang et al. 2018, Sec. 3), "
                f"but {', '.join(sorted(negative))} has negative entries; this is not a trained "
                f"LPIPS head file. {DOWNLOAD_HELP}"
            )
        model.features.load_state_dict(features)
        model.load_state_dict(heads, strict=False)  # heads only; features loaded just above
        return model

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Perceptual distance between images in [-1, 1], (B, 3, H, W) -> (B,)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"LPIPS expects RGB images of shape (B, 3, H, W) in [-1, 1]; got {tuple(x.shape)}."
                " Repeat grayscale images to 3 channels and add a batch dimension if needed."
            )
        if x.shape != y.shape:
            raise ValueError(
                f"LPIPS expects x and y of the same shape; got {tuple(x.shape)} and "
                f"{tuple(y.shape)}. Resize or crop one image to match the other."
            )
        # One VGG pass over both images: (2B, 3, H, W).
        h = self.scaling(torch.cat([x, y], dim=0))
        taps = []
        for index, layer in enumerate(self.features):
            h = layer(h)
            if index in VGG16_TAP_INDICES:
                taps.append(h)
            if index == VGG16_TAP_INDICES[-1]:
                break  # the final max-pool is not used
        distance = x.new_zeros(x.shape[0])
        for head, tap in zip(self.heads, taps, strict=True):
            feats_x, feats_y = _unit_normalize(tap).chunk(2, dim=0)  # (B, C, h, w) each
            # Eq. 1: squared difference, channel weights w_l, spatial mean, sum over layers.
            distance = distance + head((feats_x - feats_y).square()).mean(dim=(1, 2, 3))
        return distance
