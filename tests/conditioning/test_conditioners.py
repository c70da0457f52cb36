"""The conditioner protocol: every mode encodes, nulls and drops out the same way, and a mode of
one's own plugs into the pipeline without touching it."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from ldmkit.autoencoder import Autoencoder, AutoencoderConfig
from ldmkit.conditioning import (
    ClassCondition,
    ClassConditioner,
    ClipConditioner,
    ClipTextConfig,
    Conditioner,
    Conditioning,
    LayoutConditioner,
    LayoutConfig,
    Preview,
    SpatialCondition,
    SpatialConditioner,
    SpatialConfig,
    TextConditioner,
    TextEncoderConfig,
    TextTokenizer,
)
from ldmkit.conditioning.conditioner import Generators, Items
from ldmkit.pipeline import DiffusionConfig, LatentDiffusion
from ldmkit.samplers import SamplingOptions
from ldmkit.unet import unet_preset

N = 400  # samples for the dropout rate
CPU = torch.device("cpu")


def _generators(start: int, stop: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(i) for i in range(start, stop)]


def _text() -> TextConditioner:
    tokenizer = TextTokenizer.train(["a red circle", "a blue square left of a star"], 60, 8)
    config = TextEncoderConfig(vocab_size=60, width=16, layers=1, heads=2, max_length=8)
    return TextConditioner(config, tokenizer, dropout=0.3)


def _spatial() -> SpatialConditioner:
    encode = lambda images: images[:, :, ::2, ::2]  # noqa: E731 (a stand-in f=2 first stage)
    return SpatialConditioner(SpatialConfig(kind="inpaint"), encode, factor=2, dropout=0.3)


def _cases(clip_dir: Path) -> dict[str, tuple[Conditioner, Any, dict[str, Any]]]:
    """Each conditioner with two sampling values and a training batch of N."""
    layout = [(3, (0.1, 0.1, 0.5, 0.5))]
    images = torch.rand(N, 3, 8, 8) * 2 - 1
    return {
        "class": (
            ClassConditioner(5, dropout=0.3),
            torch.tensor([1, 4]),
            {"label": torch.arange(N) % 5},
        ),
        "text": (_text(), ["a red circle", "a star"], {"caption": ["a red circle"] * N}),
        "clip": (
            ClipConditioner(ClipTextConfig(path=str(clip_dir)), dropout=0.3),
            ["a cat", "a dog"],
            {"caption": ["a cat"] * N},
        ),
        "layout": (
            LayoutConditioner(
                LayoutConfig(classes=5, bins=8, max_objects=2, width=16), dropout=0.3
            ),
            [layout, []],
            {"layout": [layout] * N},
        ),
        "spatial": (_spatial(), torch.rand(2, 4, 4, 4), {"image": images}),
    }


@pytest.mark.parametrize("kind", ["class", "text", "clip", "layout", "spatial"])
def test_every_conditioner_encodes_nulls_and_drops_out_alike(kind: str, tiny_clip: Path) -> None:
    conditioner, values, batch = _cases(tiny_clip)[kind]
    assert conditioner.kind == kind
    cond = conditioner.encode(values, 2, CPU)
    uncond = conditioner.null(cond, 2, CPU)
    assert set(cond) == set(uncond) and len(cond) == 1
    key = next(iter(cond))
    assert key in ("y", "context", "concat")
    assert cond[key].shape == uncond[key].shape and cond[key].shape[0] == 2
    assert not torch.equal(cond[key], uncond[key])  # the null condition differs from a real one
    with pytest.raises(ValueError, match=f"pass 3 {conditioner.input_name}"):
        conditioner.encode(values, 3, CPU)
    # Training: a `dropout` fraction of samples becomes exactly the null condition, each
    # sample's draw from its own generator (so the split of a batch does not matter).
    trained = conditioner.training_condition(batch, _generators(0, N))[key]
    null_one = conditioner.null({key: trained[:1]}, 1, CPU)[key]
    # (allclose: a transformer's rounding depends a little on the batch size)
    dropped = torch.tensor([torch.allclose(row[None], null_one, atol=1e-5) for row in trained])
    assert 0.22 < float(dropped.float().mean()) < 0.38
    half = {k: v[: N // 2] for k, v in batch.items()}
    rest = {k: v[N // 2 :] for k, v in batch.items()}
    split = torch.cat(
        [
            conditioner.training_condition(half, _generators(0, N // 2))[key],
            conditioner.training_condition(rest, _generators(N // 2, N))[key],
        ]
    )
    torch.testing.assert_close(split, trained)


class BrightnessConditioner(Conditioner):
    """A mode of one's own: a target brightness in [-1, 1] as one cross-attention token."""

    kind = "brightness"
    input_name = "brightness"
    description = "brightness-conditional"

    def __init__(self, width: int, dropout: float = 0.2):
        super().__init__(dropout)
        self.embed = torch.nn.Linear(2, width)  # (value, present) -> token

    def _tokens(self, values: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        features = torch.stack([values * present, present], -1)
        return self.embed(features.to(self.embed.weight.device))[:, None]  # (B, 1, width)

    def encode(self, values: Any, n: int, device: torch.device) -> Conditioning:
        self.check_count(values, n)
        return {"context": self._tokens(torch.as_tensor(values), torch.ones(n))}

    def null(self, cond: Conditioning, n: int, device: torch.device) -> Conditioning:
        return {"context": self._tokens(torch.zeros(n), torch.zeros(n))}

    def training_condition(
        self, batch: dict[str, Any], generators: Sequence[torch.Generator] | None
    ) -> Conditioning:
        values = batch["image"].mean((1, 2, 3))
        present = 1.0 - torch.tensor(self.dropped(generators, len(values)), dtype=torch.float)
        return {"context": self._tokens(values, present)}

    def preview(self, items: Items, generators: Generators, device: torch.device) -> Preview:
        return Preview(torch.stack([torch.as_tensor(item["image"]).mean() for item in items]))

    def trained_module(self) -> torch.nn.Module:
        return self.embed


def test_a_new_mode_is_one_class_the_pipeline_does_not_change_for() -> None:
    torch.manual_seed(0)
    ae = Autoencoder(
        AutoencoderConfig(model_channels=8, channel_mult=(1, 2), num_res_blocks=1, norm_groups=4)
    )
    unet = unet_preset("tiny", in_channels=3, out_channels=3, context_dim=16)
    config = DiffusionConfig(unet=unet, latent_size=8)
    model = LatentDiffusion(config, ae, conditioners=[BrightnessConditioner(16)])
    with torch.no_grad():  # fill the zero-initialised layers, so outputs depend on every input
        for p in model.unet.parameters():
            if not p.any():
                p.normal_(0, 0.02)
    assert model.inputs == ("brightness",) and model.context_encoder is not None
    batch = {"image": torch.rand(4, 3, 16, 16) * 2 - 1}
    loss, _ = model.loss(batch, _generators(0, 4))
    loss.backward()
    embed = model.conditioner("brightness").embed  # type: ignore[union-attr]
    assert embed.weight.grad is not None and embed.weight.grad.abs().sum() > 0
    assert any(p is embed.weight for p in model.trainable_parameters())
    inputs = {"brightness": torch.tensor([-0.5, 0.5])}
    guided = model.sample(2, inputs=inputs, options=SamplingOptions(steps=2, guidance=3.0))
    plain = model.sample(2, inputs=inputs, options=SamplingOptions(steps=2, guidance=1.0))
    assert guided.shape == (2, 3, 16, 16) and not torch.allclose(guided, plain)
    with pytest.raises(ValueError, match="brightness-conditional: pass 2 brightness"):
        model.sample(2, options=SamplingOptions(steps=1))
    with pytest.raises(ValueError, match="this model takes no prompts"):
        model.sample(2, prompts=["a", "b"], inputs=inputs, options=SamplingOptions(steps=1))


def test_hybrid_keeps_the_map_in_both_branches_and_spatial_only_needs_dropout() -> None:
    torch.manual_seed(0)
    ae = Autoencoder(
        AutoencoderConfig(model_channels=8, channel_mult=(1, 2), num_res_blocks=1, norm_groups=4)
    )
    spatial = SpatialConfig(kind="super_resolution", factor=2)
    hybrid = DiffusionConfig(
        unet=unet_preset("tiny", in_channels=6, out_channels=3, context_dim=None, num_classes=4),
        conditioners=(ClassCondition(num_classes=3), SpatialCondition(map=spatial)),
        latent_size=8,
    )
    model = LatentDiffusion(hybrid, ae)
    assert [c.kind for c in model.conditioners] == ["class", "spatial"]
    condition = model.spatial_condition(low_res=torch.rand(2, 3, 8, 8))
    inputs = {"labels": torch.tensor([0, 2]), "condition": condition}
    cond, uncond = model.conditions(2, inputs, 3.0)
    assert torch.equal(cond["concat"], uncond["concat"])  # the map is kept
    assert uncond["y"].tolist() == [3, 3]  # the class is nulled
    assert model.default_guidance == 3.0
    only = DiffusionConfig(
        unet=unet_preset("tiny", in_channels=6, out_channels=3, context_dim=None),
        conditioners=(SpatialCondition(map=spatial),),
        latent_size=8,
    )
    spatial_only = LatentDiffusion(only, ae)
    assert spatial_only.default_guidance == 1.0  # no trained null map
    with pytest.raises(ValueError, match="spatial dropout > 0"):
        spatial_only.conditions(2, {"condition": condition}, 3.0)
    cond, uncond = spatial_only.conditions(2, {"condition": condition}, 1.0)
    assert torch.equal(uncond["concat"], torch.zeros_like(condition))
