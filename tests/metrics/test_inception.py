"""The FID InceptionV3: loads the pytorch-fid / torch-fidelity weight format from a local file,
refuses anything else with a clear error, and gives torch-fidelity's features (`make setup`
installs torch-fidelity without its dependencies; the test imports its one module from the
installed files)."""

import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest
import torch

from ldmkit.metrics.inception import InceptionV3, load_inception, resize_like_tensorflow1


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random network saved as a plain state dict, like the published .pth files."""
    torch.manual_seed(0)
    model = InceptionV3()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # non-trivial statistics
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("inception") / "pt_inception-random.pth"
    torch.save(model.state_dict(), path)
    return path


def test_loads_and_embeds_small_images(weights: Path) -> None:
    model = load_inception(weights)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    features = model.embed(images)
    assert features.shape == (2, 2048)
    assert torch.isfinite(features).all()
    assert not torch.equal(features[0], features[1])
    # Each image's features do not depend on the rest of the batch (eval-mode batch norm).
    torch.testing.assert_close(model.embed(images[1:]), features[1:], rtol=1e-5, atol=1e-6)


def test_missing_file_names_the_weights_to_get(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"pt_inception-2015-12-05-6726825d\.pth"):
        load_inception(tmp_path / "absent.pth")


def test_another_network_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3, 1, 1)}, path)
    with pytest.raises(ValueError, match="not the FID InceptionV3"):
        load_inception(path)


def test_a_pickle_with_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "unsafe.pth"
    torch.save({"fn": types.SimpleNamespace(a=1)}, path)  # needs unpickling a class
    with pytest.raises(ValueError, match="weights_only"):
        load_inception(path)


def test_tensorflow1_resize() -> None:
    x = torch.tensor([[[[0.0, 10.0]]]])  # 1 x 2 -> 1 x 4: samples at 0, 0.5, 1, 1.5 (clamped)
    assert resize_like_tensorflow1(x, 4)[0, 0, 0].tolist() == [0.0, 5.0, 10.0, 10.0]


def _torch_fidelity_package() -> Path | None:
    """torch-fidelity's package folder: the installed package (found, not imported), else
    LDMKIT_TORCH_FIDELITY_SRC/torch_fidelity (an unpacked wheel), else None."""
    spec = importlib.util.find_spec("torch_fidelity")  # locates the files, runs none of them
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    source = os.environ.get("LDMKIT_TORCH_FIDELITY_SRC")
    return Path(source) / "torch_fidelity" if source else None


TORCH_FIDELITY = _torch_fidelity_package()


def _torch_fidelity(package: Path) -> types.ModuleType:
    """torch-fidelity's InceptionV3 module, imported from its file without the package __init__
    (which imports torchvision); sys.modules is left as it was found."""

    def ours(name: str) -> bool:
        return name == "torch_fidelity" or name.startswith("torch_fidelity.")

    saved = {name: module for name, module in sys.modules.items() if ours(name)}
    stand_in = types.ModuleType("torch_fidelity")
    stand_in.__path__ = [str(package)]
    sys.modules["torch_fidelity"] = stand_in
    try:
        return importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
    finally:
        for name in [name for name in sys.modules if ours(name)]:
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.mark.skipif(
    TORCH_FIDELITY is None,
    reason="torch-fidelity is absent: `make setup` installs it (pip install --no-deps "
    "torch-fidelity==0.4.0), or set LDMKIT_TORCH_FIDELITY_SRC to an unpacked torch-fidelity wheel",
)
def test_features_match_torch_fidelity(weights: Path) -> None:
    assert TORCH_FIDELITY is not None
    reference = _torch_fidelity(TORCH_FIDELITY)
    theirs = reference.FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights)
    )
    ours = load_inception(weights, resize="torch-fidelity")
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    uint8 = ((images + 1) * 127.5).round().to(torch.uint8)
    expected = theirs(uint8)[0]
    torch.testing.assert_close(ours.embed(images), expected, rtol=1e-4, atol=1e-4)
