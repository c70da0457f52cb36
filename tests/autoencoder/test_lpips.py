"""Tests for the LPIPS perceptual distance on random weights saved in both file formats, and
against the `lpips` package's own code with the trained heads it ships (`make setup` installs
the package without its dependencies; the test imports its modules from the installed files)."""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ldmkit.autoencoder.lpips import LPIPS, VGG16_TAP_CHANNELS, load_state_dict_file


class WeightFiles:
    """A random LPIPS model and its weights written as torchvision / `lpips` style files."""

    def __init__(self, root: Path) -> None:
        torch.manual_seed(0)
        self.model = LPIPS()
        for head in self.model.heads:
            head.model[1].weight.copy_(torch.rand_like(head.model[1].weight))
        features = self.model.features.state_dict()
        # A full torchvision vgg16 dict: features.N.* plus an (unused) classifier.
        full = {f"features.{key}": value for key, value in features.items()}
        full |= {"classifier.0.weight": torch.zeros(4, 4), "classifier.0.bias": torch.zeros(4)}
        self.heads = {
            key: value.clone() for key, value in self.model.state_dict().items() if "lin" in key
        }
        self.vgg_pth = root / "vgg16-397923af.pth"
        self.vgg_features_safetensors = root / "vgg16_features.safetensors"
        self.heads_pth = root / "vgg.pth"
        self.heads_safetensors = root / "vgg.safetensors"
        torch.save(full, self.vgg_pth)
        save_file(
            {key: value.contiguous() for key, value in features.items()},
            str(self.vgg_features_safetensors),
        )
        torch.save(self.heads, self.heads_pth)
        save_file(self.heads, str(self.heads_safetensors))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> WeightFiles:
    return WeightFiles(tmp_path_factory.mktemp("lpips"))


@pytest.fixture(scope="module")
def lpips(files: WeightFiles) -> LPIPS:
    return LPIPS.from_files(files.vgg_pth, files.heads_pth)


def _images(seed: int, batch: int = 2, size: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=generator) * 2 - 1


def test_state_dict_keys_match_torchvision_and_lpips_names() -> None:
    keys = set(LPIPS().state_dict())
    conv_indices = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
    vgg_keys = {f"features.{i}.{kind}" for i in conv_indices for kind in ("weight", "bias")}
    head_keys = {f"lin{i}.model.1.weight" for i in range(5)}
    assert keys == vgg_keys | head_keys  # the scaling constants are not weights


@pytest.mark.parametrize("formats", ["pth", "safetensors"])
def test_loading_round_trip(files: WeightFiles, formats: str) -> None:
    if formats == "pth":
        model = LPIPS.from_files(files.vgg_pth, files.heads_pth)
    else:
        model = LPIPS.from_files(files.vgg_features_safetensors, files.heads_safetensors)
    expected = files.model.state_dict()
    loaded = model.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(value, expected[key]) for key, value in loaded.items())
    x, y = _images(0), _images(1)
    torch.testing.assert_close(model(x, y), files.model(x, y))


def test_matches_layerwise_reference(lpips: LPIPS) -> None:
    """Eq. 1 of Zhang et al. written out with explicit VGG slices between the five taps."""
    x, y = _images(2), _images(3)
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    bounds = [(0, 4), (4, 9), (9, 16), (16, 23), (23, 30)]  # ends after relu1_2 ... relu5_3
    h_x, h_y = (x - shift) / scale, (y - shift) / scale
    expected = torch.zeros(2)
    for layer, (start, stop) in enumerate(bounds):
        h_x, h_y = lpips.features[start:stop](h_x), lpips.features[start:stop](h_y)
        n_x = h_x / (torch.linalg.vector_norm(h_x, dim=1, keepdim=True) + 1e-10)
        n_y = h_y / (torch.linalg.vector_norm(h_y, dim=1, keepdim=True) + 1e-10)
        weights = lpips.heads[layer].model[1].weight.flatten()  # (C,)
        assert weights.numel() == VGG16_TAP_CHANNELS[layer]
        per_pixel = torch.einsum("c,bchw->bhw", weights, (n_x - n_y) ** 2)
        expected += per_pixel.mean(dim=(1, 2))
    torch.testing.assert_close(lpips(x, y), expected)


def test_distance_to_self_is_zero(lpips: LPIPS) -> None:
    x = _images(4)
    assert torch.equal(lpips(x, x), torch.zeros(2))


def test_distance_is_positive_and_symmetric(lpips: LPIPS) -> None:
    x, y = _images(5), _images(6)
    d_xy, d_yx = lpips(x, y), lpips(y, x)
    assert d_xy.shape == (2,)
    assert (d_xy > 0).all()
    torch.testing.assert_close(d_xy, d_yx)


def test_gradients_reach_input_not_weights(lpips: LPIPS) -> None:
    x = _images(7).requires_grad_(True)
    lpips(x, _images(8)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in lpips.parameters())


def test_stays_frozen_in_eval_mode(lpips: LPIPS) -> None:
    parent = torch.nn.ModuleDict({"lpips": lpips})
    parent.train()
    assert not lpips.training
    assert not any(module.training for module in lpips.modules())


def test_missing_file_explains_where_to_get_weights(files: WeightFiles, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"vgg16-397923af\.pth.*lpips/weights/v0\.1"):
        LPIPS.from_files(tmp_path / "nope.pth", files.heads_pth)
    with pytest.raises(FileNotFoundError, match=r"nope\.safetensors"):
        LPIPS.from_files(files.vgg_pth, tmp_path / "nope.safetensors")


def test_wrong_vgg_keys_are_named(files: WeightFiles) -> None:
    with pytest.raises(ValueError, match=r"VGG16.*missing keys: 0\.bias.*unexpected keys: lin0"):
        LPIPS.from_files(files.heads_pth, files.heads_pth)


def test_wrong_head_keys_are_named(files: WeightFiles, tmp_path: Path) -> None:
    renamed = dict(files.heads)
    renamed["lin0.model.0.weight"] = renamed.pop("lin0.model.1.weight")
    path = tmp_path / "renamed.safetensors"
    save_file(renamed, str(path))
    with pytest.raises(
        ValueError, match=r"missing keys: lin0\.model\.1\.weight.*unexpected keys: lin0\.model\.0"
    ):
        LPIPS.from_files(files.vgg_pth, path)


def test_wrong_head_shape_is_named(files: WeightFiles, tmp_path: Path) -> None:
    reshaped = dict(files.heads)
    reshaped["lin2.model.1.weight"] = torch.ones(1, 128, 1, 1)
    path = tmp_path / "reshaped.pth"
    torch.save(reshaped, path)
    with pytest.raises(ValueError, match=r"lin2\.model\.1\.weight.*\(1, 128, 1, 1\)"):
        LPIPS.from_files(files.vgg_pth, path)


def test_negative_heads_are_rejected(files: WeightFiles, tmp_path: Path) -> None:
    negative = dict(files.heads)
    negative["lin4.model.1.weight"] = -negative["lin4.model.1.weight"]
    path = tmp_path / "negative.pth"
    torch.save(negative, path)
    with pytest.raises(ValueError, match="non-negative"):
        LPIPS.from_files(files.vgg_pth, path)


def test_non_state_dict_files_are_rejected(tmp_path: Path) -> None:
    not_a_state_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_a_state_dict)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        load_state_dict_file(not_a_state_dict)
    unknown = tmp_path / "weights.npz"
    unknown.write_bytes(b"")
    with pytest.raises(ValueError, match=r"\.safetensors"):
        load_state_dict_file(unknown)


def test_rejects_mismatched_images(lpips: LPIPS) -> None:
    with pytest.raises(ValueError, match="same shape"):
        lpips(_images(0, size=32), _images(1, size=16))
    with pytest.raises(ValueError, match="3 channels"):
        lpips(torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32))


def _lpips_package() -> Path | None:
    """The `lpips` package folder: the installed package (found, not imported), else
    LDMKIT_LPIPS_SRC/lpips (an unpacked wheel), else None."""
    spec = importlib.util.find_spec("lpips")  # locates the files, runs none of them
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    source = os.environ.get("LDMKIT_LPIPS_SRC")
    return Path(source) / "lpips" if source else None


LPIPS_PACKAGE = _lpips_package()

# torchvision's VGG16 `features` (configuration "D"), written out here rather than taken from
# ldmkit: a conv 3x3 (padding 1) + in-place ReLU per width, "M" a 2x2 max pool.
_TORCHVISION_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M")
_TORCHVISION_VGG16 += (512, 512, 512, "M", 512, 512, 512, "M")


def _torchvision_stand_in(vgg16_path: Path) -> types.ModuleType:
    """A `torchvision` module whose `models.vgg16(pretrained=True)` has torchvision's `features`
    layout with the weights of `vgg16_path` (a torchvision state dict, read weights-only)."""

    def vgg16(pretrained: bool = False, **kwargs: object) -> types.SimpleNamespace:
        assert pretrained and not kwargs  # what lpips asks for: the ImageNet trunk
        layers: list[torch.nn.Module] = []
        channels = 3
        for item in _TORCHVISION_VGG16:
            if item == "M":
                layers.append(torch.nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(item, int)
                layers += [torch.nn.Conv2d(channels, item, 3, padding=1), torch.nn.ReLU(True)]
                channels = item
        features = torch.nn.Sequential(*layers)
        state = torch.load(vgg16_path, map_location="cpu", weights_only=True)
        prefix = "features."
        features.load_state_dict(
            {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
        )
        return types.SimpleNamespace(features=features)

    torchvision = types.ModuleType("torchvision")
    torchvision.models = types.ModuleType("torchvision.models")  # type: ignore[attr-defined]
    torchvision.models.vgg16 = vgg16  # type: ignore[attr-defined]
    return torchvision


def _lpips_module(package: Path, vgg16_path: Path) -> types.ModuleType:
    """The package's `lpips/lpips.py`, imported from its files: its __init__ (which defines
    normalize_tensor) and pretrained_networks.py run as shipped; `lpips.trainer` (scipy, for
    training the heads) is an empty stand-in and torchvision is `_torchvision_stand_in`.
    sys.modules is left as it was found."""

    def ours(name: str) -> bool:
        return name.split(".")[0] in {"lpips", "torchvision"}

    saved = {name: module for name, module in sys.modules.items() if ours(name)}
    torchvision = _torchvision_stand_in(vgg16_path)
    sys.modules["torchvision"] = torchvision
    sys.modules["torchvision.models"] = torchvision.models  # type: ignore[attr-defined]
    sys.modules["lpips.trainer"] = types.ModuleType("lpips.trainer")
    spec = importlib.util.spec_from_file_location(
        "lpips", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    assert spec is not None and spec.loader is not None
    init = importlib.util.module_from_spec(spec)
    sys.modules["lpips"] = init
    try:
        spec.loader.exec_module(init)
        return sys.modules["lpips.lpips"]
    finally:
        for name in [name for name in sys.modules if ours(name)]:
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.mark.skipif(
    LPIPS_PACKAGE is None,
    reason="the lpips package is absent: `make setup` installs it (pip install --no-deps "
    "lpips==0.1.4), or set LDMKIT_LPIPS_SRC to an unpacked lpips wheel",
)
def test_matches_lpips_package_with_its_shipped_heads(files: WeightFiles) -> None:
    assert LPIPS_PACKAGE is not None
    heads_path = LPIPS_PACKAGE / "weights" / "v0.1" / "vgg.pth"
    shipped = torch.load(heads_path, map_location="cpu", weights_only=True)
    ours = LPIPS.from_files(files.vgg_pth, heads_path)
    # The package's own model on the same VGG weights; heads loaded as its constructor does
    # (load_state_dict(..., strict=False)), but from the weights-only read above.
    reference = _lpips_module(LPIPS_PACKAGE, files.vgg_pth)
    theirs = reference.LPIPS(pretrained=False, net="vgg", version="0.1", verbose=False)
    assert not theirs.load_state_dict(shipped, strict=False).unexpected_keys
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert sorted(shipped) == [f"lin{i}.model.1.weight" for i in range(5)]
    for key, value in shipped.items():
        assert torch.equal(ours_state[key], value) and torch.equal(theirs_state[key], value)
    # The same trunk in both: their net.sliceK.N.* is our features.N.*.
    trunk = {key.split(".", 1)[1]: value for key, value in theirs.net.state_dict().items()}
    ours_trunk = ours.features.state_dict()
    assert trunk.keys() == ours_trunk.keys()
    assert all(torch.equal(value, ours_trunk[key]) for key, value in trunk.items())

    generator = torch.Generator().manual_seed(9)
    x = torch.rand(4, 3, 64, 48, generator=generator) * 2 - 1
    near = (x + 0.05 * torch.randn(x.shape, generator=generator)).clamp(-1, 1)
    far = torch.rand(x.shape, generator=generator) * 2 - 1
    for y in (near, far):
        expected = theirs(x, y).flatten()  # (B, 1, 1, 1) -> (B,)
        assert (expected > 0).all()
        torch.testing.assert_close(ours(x, y), expected, rtol=1e-5, atol=1e-6)
