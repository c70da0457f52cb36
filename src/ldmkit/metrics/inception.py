"""The InceptionV3 network of the standard FID (Heusel et al. 2017): TensorFlow's 2015-12-05
graph as ported to PyTorch, with its quirks (average pools that ignore padding; a max pool in
the last block), so that FIDs computed here compare with published ones.

Weights are never downloaded: `load_inception(path)` reads the file pytorch-fid or torch-fidelity
use (`pt_inception-2015-12-05-6726825d.pth` / `weights-inception-2015-12-05-6726825d.pth`, same
parameter names) or a safetensors copy of it. The two tools feed the network differently;
`resize` picks which one to match: "pytorch-fid" (torch bilinear resize of [0, 1] images) or
"torch-fidelity" (TensorFlow 1 bilinear resize of 0..255 values).
"""

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 299
FEATURES = 2048
Resize = Literal["pytorch-fid", "torch-fidelity"]


class _Conv(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3), ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], **kwargs: object):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, bias=False, **kwargs)  # type: ignore[arg-type]
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's average pool leaves the zero padding out of the mean.
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class _BlockA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = _Conv(cin, 64, 1)
        self.branch5x5_1 = _Conv(cin, 48, 1)
        self.branch5x5_2 = _Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, padding=1)
        self.branch_pool = _Conv(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool(x))], 1)


class _BlockB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = _Conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class _BlockC(nn.Module):
    def __init__(self, cin: int, c7: int):
        super().__init__()
        row, col = {"padding": (0, 3)}, {"padding": (3, 0)}
        self.branch1x1 = _Conv(cin, 192, 1)
        self.branch7x7_1 = _Conv(cin, c7, 1)
        self.branch7x7_2 = _Conv(c7, c7, (1, 7), **row)
        self.branch7x7_3 = _Conv(c7, 192, (7, 1), **col)
        self.branch7x7dbl_1 = _Conv(cin, c7, 1)
        self.branch7x7dbl_2 = _Conv(c7, c7, (7, 1), **col)
        self.branch7x7dbl_3 = _Conv(c7, c7, (1, 7), **row)
        self.branch7x7dbl_4 = _Conv(c7, c7, (7, 1), **col)
        self.branch7x7dbl_5 = _Conv(c7, 192, (1, 7), **row)
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4):
            d = layer(d)
        d = self.branch7x7dbl_5(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool(x))], 1)


class _BlockD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = _Conv(cin, 192, 1)
        self.branch3x3_2 = _Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _Conv(cin, 192, 1)
        self.branch7x7x3_2 = _Conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _Conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _Conv(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class _BlockE(nn.Module):
    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool  # the last block of the FID graph max-pools (a quirk kept)
        self.branch1x1 = _Conv(cin, 320, 1)
        self.branch3x3_1 = _Conv(cin, 384, 1)
        self.branch3x3_2a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _Conv(cin, 448, 1)
        self.branch3x3dbl_2 = _Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], 1)


def resize_like_tensorflow1(x: torch.Tensor, size: int) -> torch.Tensor:
    """TF1 `resize_bilinear` (align_corners=False, no half-pixel centres): output pixel i samples
    the input at i * in / out, clamped at the last row/column."""
    for dim in (-2, -1):
        n_in = x.shape[dim]
        pos = torch.arange(size, dtype=torch.float64, device=x.device) * (n_in / size)
        lo = pos.floor().long().clamp(max=n_in - 1)
        hi = (lo + 1).clamp(max=n_in - 1)
        frac = (pos - lo).to(x.dtype)
        shape = [1] * x.ndim
        shape[dim] = size
        a, b = x.index_select(dim, lo), x.index_select(dim, hi)
        x = a + (b - a) * frac.view(shape)
    return x


class InceptionV3(nn.Module):
    """The FID InceptionV3 (parameter names as in the pytorch-fid / torch-fidelity files).

    `embed(images)` takes images in [-1, 1] of any size, rounds them to 8 bits as a saved PNG
    would, resizes to 299x299 as the chosen tool does and returns the 2048-d pool features.
    """

    def __init__(self, resize: Resize = "pytorch-fid"):
        super().__init__()
        if resize not in ("pytorch-fid", "torch-fidelity"):
            raise ValueError(f"resize must be 'pytorch-fid' or 'torch-fidelity', got {resize!r}")
        self.resize = resize
        self.Conv2d_1a_3x3 = _Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = _Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = _Conv(80, 192, 3)
        self.Mixed_5b = _BlockA(192, 32)
        self.Mixed_5c = _BlockA(256, 64)
        self.Mixed_5d = _BlockA(288, 64)
        self.Mixed_6a = _BlockB(288)
        self.Mixed_6b = _BlockC(768, 128)
        self.Mixed_6c = _BlockC(768, 160)
        self.Mixed_6d = _BlockC(768, 160)
        self.Mixed_6e = _BlockC(768, 192)
        self.Mixed_7a = _BlockD(768)
        self.Mixed_7b = _BlockE(1280, max_pool=False)
        self.Mixed_7c = _BlockE(2048, max_pool=True)
        self.fc = nn.Linear(FEATURES, 1008)  # the graph's logits; unused by FID, kept to load

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 299, 299) normalised to [-1, 1] -> (N, 2048)."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, stride=2)))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean((2, 3))

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Pool features (N, 2048) of images in [-1, 1], (N, 3, H, W)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected RGB images (N, 3, H, W), got {tuple(images.shape)}")
        values = ((images.float().clamp(-1, 1) + 1) * 127.5).round()  # 0..255, as from a PNG
        if self.resize == "pytorch-fid":
            size = (INPUT_SIZE, INPUT_SIZE)
            x = F.interpolate(values / 255, size=size, mode="bilinear", align_corners=False)
            x = 2 * x - 1
        else:
            x = (resize_like_tensorflow1(values, INPUT_SIZE) - 128) / 128
        return self.pool_features(x)


WEIGHTS_HELP = (
    "get the FID InceptionV3 weights on a machine with internet access: pytorch-fid's "
    "pt_inception-2015-12-05-6726825d.pth or torch-fidelity's "
    "weights-inception-2015-12-05-6726825d.pth (their release pages), copy the file here and "
    "pass its path"
)


def load_inception(path: Path, resize: Resize = "pytorch-fid") -> InceptionV3:
    """The FID network with weights from a local `.pth` (read with weights_only=True) or
    `.safetensors` file; a clear error if the file is absent or holds another network."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no InceptionV3 weights at {path}; {WEIGHTS_HELP}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as error:
            raise ValueError(
                f"{path} is not a readable safetensors file ({error}); {WEIGHTS_HELP}"
            ) from error
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # a pickle with code in it, or not a torch file at all
            raise ValueError(
                f"{path} is not a plain tensor state dict (refused by weights_only loading: "
                f"{type(error).__name__}); {WEIGHTS_HELP}"
            ) from error
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict; {WEIGHTS_HELP}")
    model = InceptionV3(resize)
    expected = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    given = {k for k in state if not k.endswith("num_batches_tracked")}
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    if missing or unexpected:
        raise ValueError(
            f"{path} is not the FID InceptionV3: {len(missing)} missing parameters "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}); "
            f"{WEIGHTS_HELP}"
        )
    for key, tensor in model.state_dict().items():
        if key in given and state[key].shape != tensor.shape:
            raise ValueError(
                f"{path}: {key} has shape {tuple(state[key].shape)}, expected "
                f"{tuple(tensor.shape)}; {WEIGHTS_HELP}"
            )
    model.load_state_dict({k: v for k, v in state.items() if k in given}, strict=False)
    return model.eval().requires_grad_(False)
