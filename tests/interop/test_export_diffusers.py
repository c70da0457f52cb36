"""ldmkit models written as diffusers folders: diffusers loads each component with its own
classes and computes the same outputs; a CLIP-conditioned model is a whole pipeline that
`ldmkit.load` reads back."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import ldmkit
from ldmkit.assets import SHAPES_TEXT_TO_IMAGE
from ldmkit.autoencoder import Autoencoder, AutoencoderConfig
from ldmkit.checkpoint import CheckpointError
from ldmkit.interop.diffusers_unet import unet_config_from_diffusers
from ldmkit.interop.export_diffusers import (
    conditioners_left_out,
    export_diffusers,
    unet_config_to_diffusers,
    unet_state_to_diffusers,
)
from ldmkit.pipeline import LatentDiffusion
from ldmkit.unet import UNET_PRESETS, UNet, unet_preset

diffusers = pytest.importorskip("diffusers", reason="writing for diffusers needs diffusers")
transformers = pytest.importorskip("transformers", reason="the CLIP encoder needs transformers")

from sd_layout import make_parts, sd1_state, sd2_parts  # noqa: E402


def load_text_to_image() -> LatentDiffusion:
    """The shipped text-to-image model (ldmkit's own text encoder, a KL first stage)."""
    return ldmkit.load(SHAPES_TEXT_TO_IMAGE)


@pytest.mark.parametrize("name", ["sd-v1", "sd-v2", "ldm4-cin256", "tiny", "small"])
def test_unet_configs_go_to_diffusers_and_back(name: str) -> None:
    config = UNET_PRESETS[name]
    back = unet_config_from_diffusers(unet_config_to_diffusers(config, 32))
    # Heads may come back as a count where a fixed width gave one count at every level.
    assert _heads(back) == _heads(config)
    fields = {"use_checkpoint": config.use_checkpoint, "num_heads": config.num_heads}
    assert replace(back, **fields, num_head_channels=config.num_head_channels) == config


def _heads(config) -> list[int]:
    """The number of heads at each level with attention (and the middle)."""
    levels = [i for i in range(len(config.channel_mult)) if 2**i in config.attention_resolutions]
    widths = [config.model_channels * config.channel_mult[i] for i in {*levels, -1}]
    if config.num_heads is not None:
        return [config.num_heads] * len(widths)
    return [w // config.num_head_channels for w in widths]


@pytest.fixture(scope="module")
def sd1_model(tmp_path_factory: pytest.TempPathFactory) -> LatentDiffusion:
    path = tmp_path_factory.mktemp("sd1") / "tiny-sd1.safetensors"
    save_file(sd1_state(make_parts()), str(path))
    return ldmkit.load(path)


@torch.no_grad()
def test_a_clip_model_is_a_pipeline_diffusers_runs(sd1_model, tmp_path: Path) -> None:
    model = sd1_model
    model.autoencoder.set_latent_statistics(shift=0.2, scale=0.5)  # folded on the way out
    out = export_diffusers(model, tmp_path / "pipe")
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(out, local_files_only=True)
    assert pipe.scheduler.config.steps_offset == 1 and not pipe.scheduler.config.set_alpha_to_one
    cond, _ = model.conditions(2, {"prompts": ["a cat", ""]}, 1.0)
    ids = pipe.tokenizer(
        ["a cat", ""], padding="max_length", max_length=77, return_tensors="pt"
    ).input_ids
    torch.testing.assert_close(pipe.text_encoder(ids)[0], cond["context"])
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([10, 700])
    theirs = pipe.unet(x, t, encoder_hidden_states=cond["context"]).sample
    torch.testing.assert_close(model.conditional_unet(x, t, cond), theirs, rtol=1e-4, atol=1e-4)
    decoded = pipe.vae.decode(x / pipe.vae.config.scaling_factor).sample.clamp(-1, 1)
    torch.testing.assert_close(model.decode(x), decoded, rtol=1e-4, atol=1e-4)
    again = ldmkit.load(out)  # and ldmkit reads its own export back
    torch.testing.assert_close(again.decode(x), model.decode(x), rtol=1e-4, atol=1e-4)
    model.autoencoder.set_latent_statistics(shift=0.0, scale=0.18215)


@torch.no_grad()
def test_a_2x_text_tower_is_written_as_diffusers_keeps_it(tmp_path: Path) -> None:
    _, _, state = sd2_parts(make_parts())
    source = tmp_path / "tiny-sd2.safetensors"
    save_file(state, str(source))
    model = ldmkit.load(source, prediction="v")
    out = export_diffusers(model, tmp_path / "sd2")
    text = transformers.CLIPTextModel.from_pretrained(out / "text_encoder")
    assert text.config.num_hidden_layers == model.clip.model.config.num_hidden_layers - 1
    cond, _ = model.conditions(1, {"prompts": ["a cat"]}, 1.0)
    tokenizer = transformers.CLIPTokenizer.from_pretrained(out / "tokenizer")
    ids = tokenizer(["a cat"], padding="max_length", max_length=77, return_tensors="pt")
    torch.testing.assert_close(text(ids.input_ids).last_hidden_state, cond["context"])
    assert ldmkit.load(out).config.loss.prediction == "v"


@torch.no_grad()
def test_ldmkits_own_text_model_writes_components_diffusers_loads(tmp_path: Path) -> None:
    model = load_text_to_image()  # the shipped model: its own text encoder, no diffusers class
    assert conditioners_left_out(model) == ["text"]
    out = export_diffusers(model, tmp_path / "t2i")
    assert not (out / "model_index.json").exists()  # no pipeline: the components
    unet = diffusers.UNet2DConditionModel.from_pretrained(out / "unet")
    cond, _ = model.conditions(2, {"prompts": ["a red circle", "a blue star"]}, 1.0)
    channels = model.config.unet.in_channels
    x = torch.randn(2, channels, 16, 16, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([5, 900])
    theirs = unet(x, t, encoder_hidden_states=cond["context"]).sample
    torch.testing.assert_close(model.conditional_unet(x, t, cond), theirs, rtol=1e-4, atol=1e-4)
    vae = diffusers.AutoencoderKL.from_pretrained(out / "vae")
    decoded = vae.decode(x / vae.config.scaling_factor).sample.clamp(-1, 1)
    torch.testing.assert_close(model.decode(x), decoded, rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_class_labels_are_the_unets_class_embedding() -> None:
    torch.manual_seed(5)
    config = unet_preset("tiny", in_channels=4, out_channels=4, context_dim=32, num_classes=6)
    ours = UNet(config).eval()
    for p in ours.parameters():
        p.add_(torch.randn_like(p) * 0.02)  # no zero-initialised layer hides a mapping error
    settings = unet_config_to_diffusers(config, 8)
    theirs = diffusers.UNet2DConditionModel.from_config(
        {k: v for k, v in settings.items() if not k.startswith("_")}
    ).eval()
    theirs.load_state_dict(unet_state_to_diffusers(ours.state_dict(), config, settings))
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([3, 600])
    context, y = torch.randn(2, 5, 32), torch.tensor([1, 5])
    expected = theirs(x, t, encoder_hidden_states=context, class_labels=y).sample
    torch.testing.assert_close(ours(x, t, y=y, context=context), expected, rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_a_vq_first_stage_is_a_vqmodel(tmp_path: Path) -> None:
    torch.manual_seed(3)
    config = AutoencoderConfig(
        kind="vq", model_channels=8, channel_mult=(1, 2), num_res_blocks=1, norm_groups=4
    )
    model = load_text_to_image()
    model.autoencoder = Autoencoder(config).eval()
    out = export_diffusers(model, tmp_path / "vq")
    vae = diffusers.VQModel.from_pretrained(out / "vae")
    images = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(4)) * 2 - 1
    z = model.autoencoder.encode(images).mode()
    theirs = vae.decode(vae.encode(images).latents).sample
    torch.testing.assert_close(model.autoencoder.decode(z), theirs, rtol=1e-4, atol=1e-4)


def test_what_diffusers_has_no_class_for_is_refused(tmp_path: Path, make_ldm) -> None:
    model = make_ldm()  # self-attention-only transformers: no UNet2DConditionModel for them
    with pytest.raises(CheckpointError, match="self-attention only"):
        export_diffusers(model, tmp_path / "no")
    model = load_text_to_image()
    model.autoencoder = Autoencoder(replace(model.autoencoder.config, attn_factors=(2,)))
    with pytest.raises(CheckpointError, match="no attention inside the levels"):
        export_diffusers(model, tmp_path / "no")
    assert not (tmp_path / "no").exists()


def test_an_inpainting_model_is_an_inpainting_pipeline(tmp_path: Path) -> None:
    from sd_layout import UNET_CONFIG, random_weights

    parts = make_parts()
    parts["unet"] = random_weights(UNet(replace(UNET_CONFIG, in_channels=9)))
    source = tmp_path / "tiny-inpainting.safetensors"
    save_file(sd1_state(parts), str(source))
    out = export_diffusers(ldmkit.load(source), tmp_path / "inpaint")
    pipe = diffusers.DiffusionPipeline.from_pretrained(out, local_files_only=True)
    assert type(pipe).__name__ == "StableDiffusionInpaintPipeline"
    assert pipe.unet.config.in_channels == 9
    assert ldmkit.load(out).spatial.layout == "stable_diffusion"


def test_the_export_command_writes_both_formats_and_refuses_clearly(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ldmkit.cli import app

    source = tmp_path / "tiny-sd1.safetensors"
    save_file(sd1_state(make_parts()), str(source))
    runner = CliRunner()
    folder = tmp_path / "as-diffusers"
    result = runner.invoke(app, ["export", str(source), str(folder)])
    assert result.exit_code == 0, result.output
    assert (folder / "model_index.json").is_file()
    single = tmp_path / "again.safetensors"
    result = runner.invoke(app, ["export", str(folder), str(single), "--format", "single-file"])
    assert result.exit_code == 0, result.output
    assert single.is_file() and single.with_suffix(".yaml").is_file()
    t2i = runner.invoke(app, ["export", str(SHAPES_TEXT_TO_IMAGE), str(tmp_path / "t2i")])
    assert t2i.exit_code == 0 and "no class for this model's text conditioner" in t2i.output
    for arguments, message in [
        (["--format", "onnx"], "--format must be one of diffusers, single-file"),
        (["--format", "single-file"], "must end in .safetensors"),
    ]:
        result = runner.invoke(app, ["export", str(source), str(tmp_path / "x"), *arguments])
        assert result.exit_code == 2 and message in result.output, result.output
    result = runner.invoke(app, ["export", str(source), str(folder)])
    assert result.exit_code == 2 and "exists" in result.output
    result = runner.invoke(
        app,
        [
            "export",
            str(SHAPES_TEXT_TO_IMAGE),
            str(tmp_path / "t.safetensors"),
            "--format",
            "single-file",
        ],
    )
    assert result.exit_code == 2 and "holds a UNet, a first stage and CLIP" in result.output
