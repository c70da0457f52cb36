"""LatentDiffusion: loss on the frozen first stage, label dropout, guided sampling."""

from collections.abc import Callable

import pytest
import torch

from ldmkit.autoencoder import Autoencoder, AutoencoderConfig
from ldmkit.conditioning import ClassCondition, TextCondition
from ldmkit.pipeline import DiffusionConfig, LatentDiffusion
from ldmkit.pipeline.compiled_denoiser import CompiledDenoiser
from ldmkit.samplers import SamplingOptions
from ldmkit.unet import unet_preset

MakeLDM = Callable[..., LatentDiffusion]


def test_loss_trains_only_the_unet(make_ldm: MakeLDM) -> None:
    model = make_ldm()
    batch = {"image": torch.rand(4, 3, 16, 16) * 2 - 1, "label": torch.tensor([0, 1, 2, 4])}

    def generators(start: int, stop: int) -> list[torch.Generator]:
        return [torch.Generator().manual_seed(i) for i in range(start, stop)]

    loss, logs = model.loss(batch, generators(0, 4))
    halves = [{k: v[i : i + 2] for k, v in batch.items()} for i in (0, 2)]
    split = [model.loss(halves[0], generators(0, 2))[0], model.loss(halves[1], generators(2, 4))[0]]
    assert torch.allclose(loss, (split[0] + split[1]) / 2, atol=1e-6)  # split-independent
    assert loss.ndim == 0 and torch.isfinite(loss) and logs["loss"] == pytest.approx(loss.item())
    loss.backward()
    assert all(p.grad is None for p in model.autoencoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.unet.parameters())
    model.train()
    assert not model.autoencoder.training  # the first stage stays frozen in eval mode


def test_label_dropout_uses_the_null_class(make_ldm: MakeLDM) -> None:
    model = make_ldm(label_dropout=0.5)
    torch.manual_seed(0)
    labels = model.training_labels(torch.zeros(2000, dtype=torch.long))
    dropped = (labels == model.null_class).float().mean()
    assert 0.45 < float(dropped) < 0.55
    assert set(labels.tolist()) == {0, model.null_class}
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.4"):
        model.training_labels(torch.tensor([-1]))


def test_sampling_is_per_sample_reproducible_and_guidance_one_is_conditional(
    make_ldm: MakeLDM,
) -> None:
    model = make_ldm()
    labels = torch.tensor([0, 3, 1])
    a = model.sample(3, labels, options=SamplingOptions(steps=3, guidance=2.0, seed=7))
    assert a.shape == (3, 3, 16, 16) and a.abs().max() <= 1
    b = model.sample(2, labels[:2], options=SamplingOptions(steps=3, guidance=2.0, seed=7))
    assert torch.allclose(a[:2], b, atol=1e-5)  # batch-size independent
    guided_one = model.sample(2, labels[:2], options=SamplingOptions(steps=3, guidance=1.0, seed=7))
    unguided = model.sample(2, labels[:2], options=SamplingOptions(steps=3, guidance=0.0, seed=7))
    assert not torch.allclose(guided_one, unguided, atol=1e-4)  # labels matter
    with pytest.raises(ValueError, match="pass 2 labels"):
        model.sample(2, options=SamplingOptions(steps=2))


@pytest.mark.slow
def test_compiled_sampling_matches_eager_and_follows_new_weights(make_ldm: MakeLDM) -> None:
    model = make_ldm()
    labels = torch.tensor([0, 3])

    def eager_and_compiled() -> tuple[torch.Tensor, torch.Tensor]:
        options = SamplingOptions(steps=3, guidance=2.0, seed=1)
        compiled = options.replace(compile=True)
        return model.sample(2, labels, options=options), model.sample(2, labels, options=compiled)

    eager, compiled = eager_and_compiled()
    assert torch.allclose(eager, compiled, atol=1e-4)
    with torch.no_grad():  # weights changed in place, as by training or load_state_dict
        for p in model.unet.parameters():
            p.mul_(1.5)
    changed, recompiled = eager_and_compiled()
    assert not torch.allclose(eager, changed, atol=1e-3)  # the change matters
    assert torch.allclose(changed, recompiled, atol=1e-4)  # the compiled copy follows it


def test_bf16_sampling_is_close_to_fp32_and_bad_precision_is_refused(make_ldm: MakeLDM) -> None:
    model = make_ldm()
    labels = torch.tensor([0, 3])
    options = SamplingOptions(steps=3, guidance=2.0, seed=1)
    full = model.sample(2, labels, options=options)
    half = model.sample(2, labels, options=options.replace(precision="bf16"))
    assert half.dtype == torch.float32
    difference = float((full - half).abs().max())
    assert 0 < difference < 0.05  # the UNet ran in bfloat16, the result barely moved
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16"):
        model.sample(2, labels, options=SamplingOptions(steps=1, precision="int8"))


@pytest.mark.parametrize(("precision", "decoded"), [("bf16", torch.bfloat16), ("fp32", None)])
def test_the_decoder_runs_in_bf16_for_bf16_sampling_only(make_ldm: MakeLDM, precision, decoded):
    """bf16 sampling decodes under bf16 autocast (half the decode's memory and time) and still
    returns float32 images; fp32 decodes in float32 (fp16 too: its range overflows decoders)."""
    model = make_ldm()
    seen: list[torch.dtype | None] = []

    def autocast_dtype(*_: object) -> None:
        enabled = torch.is_autocast_enabled("cpu")
        seen.append(torch.get_autocast_dtype("cpu") if enabled else None)

    model.autoencoder.decoder.conv_out.register_forward_hook(autocast_dtype)
    options = SamplingOptions(steps=2, guidance=1.0, seed=1, precision=precision)
    images = model.sample(2, torch.tensor([0, 1]), options=options)
    assert seen == [decoded] and images.dtype == torch.float32
    assert images.isfinite().all()


def test_compiled_denoiser_refuses_gradients(make_ldm: MakeLDM) -> None:
    denoiser = CompiledDenoiser(torch.nn.Conv2d(1, 1, 1))
    with pytest.raises(RuntimeError, match=r"torch\.no_grad"):
        denoiser(torch.zeros(1, 1, 2, 2))


def test_config_mismatches_are_clear_errors(make_ldm: MakeLDM) -> None:
    unet = unet_preset("tiny", num_classes=None, context_dim=None)
    with pytest.raises(ValueError, match=r"unet\.num_classes must be 6"):
        DiffusionConfig(unet=unet, conditioners=(ClassCondition(num_classes=5),))
    with pytest.raises(ValueError, match=r"unet\.num_classes=4, but no class conditioner"):
        DiffusionConfig(unet=unet_preset("tiny", num_classes=4, context_dim=None))
    with pytest.raises(ValueError, match="text encoder's width 128; it is None"):
        DiffusionConfig(unet=unet, conditioners=(TextCondition(),))
    ae = Autoencoder(
        AutoencoderConfig(model_channels=8, channel_mult=(1, 2), num_res_blocks=1, norm_groups=4)
    )
    config = DiffusionConfig(
        unet=unet_preset("tiny", in_channels=4, out_channels=4, context_dim=None)
    )
    with pytest.raises(ValueError, match="latent has 3 channels"):
        LatentDiffusion(config, ae)


def test_image_to_image_keeps_more_of_the_image_at_low_strength(make_ldm: MakeLDM) -> None:
    model = make_ldm()
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    labels = torch.tensor([0, 3])
    reconstruction = model.decode(model.encode(images))

    def distance(strength: float, sampler: str = "ddim") -> float:
        options = SamplingOptions(sampler, steps=10, guidance=1.0)
        out = model.sample(2, labels, options=options, init_images=images, strength=strength)
        assert out.shape == images.shape
        return float((out - reconstruction).abs().mean())

    assert distance(0.1) < distance(0.6) < distance(1.0)
    for sampler in ("plms", "euler", "DPM++ 2M Karras"):  # any sampler starts part way down
        assert distance(0.1, sampler) < distance(1.0, sampler)
    with pytest.raises(ValueError, match="strength"):
        model.sample(2, labels, options=SamplingOptions(steps=4), init_images=images, strength=0.0)


def test_guidance_rescale_reaches_the_sampler(make_ldm: MakeLDM) -> None:
    model = make_ldm()
    labels = torch.tensor([0, 3])
    options = SamplingOptions(steps=2, guidance=5.0)
    plain = model.sample(2, labels, options=options)
    rescaled = model.sample(2, labels, options=options.replace(guidance_rescale=0.7))
    assert torch.isfinite(rescaled).all() and not torch.equal(plain, rescaled)
    again = model.sample(2, labels, options=options.replace(guidance_rescale=0.0))
    assert torch.equal(again, plain)


def test_weights_held_in_bf16_sample_at_that_precision_only(make_ldm: MakeLDM) -> None:
    model = make_ldm()
    labels = torch.tensor([0, 3])
    options = SamplingOptions(steps=4, guidance=2.0, precision="bf16", seed=2)
    autocast = model.sample(2, labels, options=options)  # float32 weights under autocast
    model.hold_weights_in("bf16")
    assert model.weight_precision == "bf16"
    assert all(p.dtype == torch.bfloat16 for p in model.unet.parameters())
    assert next(model.autoencoder.parameters()).dtype == torch.float32  # the rest stays
    held = model.sample(2, labels, options=options)
    assert held.dtype == torch.float32 and (held - autocast).abs().max() < 0.1
    with pytest.raises(ValueError, match=r"holds bf16 weights .* sample with precision bf16"):
        model.sample(2, labels, options=options.replace(precision="fp32"))
    model.hold_weights_in("fp32")
    assert model.sample(2, labels, options=options.replace(precision="fp32")).isfinite().all()
