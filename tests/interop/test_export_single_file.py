"""ldmkit models written as Stable Diffusion single files with their original YAML config: read
back by ldmkit to the same tensors and outputs, and by diffusers' own single-file loader (an
independent implementation of the CompVis key layout) to the same UNet and decoder outputs."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import ldmkit
from ldmkit.checkpoint import CheckpointError
from ldmkit.interop.export_single_file import export_single_file
from ldmkit.interop.openclip import hf_to_openclip, openclip_to_hf
from ldmkit.samplers import SamplingOptions

transformers = pytest.importorskip("transformers", reason="the CLIP encoder needs transformers")

from sd_layout import make_parts, sd1_state, sd2_parts  # noqa: E402


@pytest.fixture(scope="module")
def sd_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "tiny-sd1.safetensors"
    save_file(sd1_state(make_parts()), str(path))
    return path


def test_a_written_file_holds_the_same_tensors_and_reads_back(sd_file: Path, tmp_path: Path):
    model = ldmkit.load(sd_file)
    out, config = export_single_file(model, tmp_path / "again.safetensors")
    assert config == tmp_path / "again.yaml"
    original, written = load_file(str(sd_file)), load_file(str(out))
    assert set(original) <= set(written)
    assert all(torch.equal(original[key], written[key]) for key in original)
    again = ldmkit.load(out, original_config=config)
    assert again.config.unet == model.config.unet and again.config.loss == model.config.loss
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.decode(z), model.decode(z))


def test_a_plain_linear_schedule_is_written_and_read_back(tmp_path: Path) -> None:
    import yaml

    from ldmkit.diffusion import beta_linear_schedule

    state = sd1_state(make_parts())
    schedule = beta_linear_schedule(1000, 0.0001, 0.02)  # DDPM's: linear in beta
    state |= {"betas": schedule.betas.float(), "alphas_cumprod": schedule.alpha_bar.float()}
    save_file(state, str(tmp_path / "plain-linear.safetensors"))
    model = ldmkit.load(tmp_path / "plain-linear.safetensors")
    assert (model.config.schedule.kind, model.config.schedule.beta_end) == ("beta_linear", 0.02)
    out, config = export_single_file(model, tmp_path / "again.safetensors")
    params = yaml.safe_load(config.read_text())["model"]["params"]
    # The CompVis code's make_beta_schedule: "sqrt_linear" is linspace(start, end), "linear"
    # the sqrt-linear one.
    assert (params["beta_schedule"], params["linear_start"], params["linear_end"]) == (
        "sqrt_linear",
        0.0001,
        0.02,
    )
    assert torch.equal(load_file(str(out))["betas"], state["betas"])
    for again in (ldmkit.load(out), ldmkit.load(out, original_config=config)):
        assert again.config.schedule == model.config.schedule
        assert torch.equal(again.schedule.alpha_bar, model.schedule.alpha_bar)


def test_a_latent_shift_is_folded_into_the_first_stage(sd_file: Path, tmp_path: Path) -> None:
    model = ldmkit.load(sd_file)
    model.autoencoder.set_latent_statistics(shift=0.3, scale=0.5)
    out, config = export_single_file(model, tmp_path / "shifted.safetensors")
    again = ldmkit.load(out, original_config=config)
    assert float(again.autoencoder.latent_shift) == 0.0
    assert float(again.autoencoder.latent_scale) == 0.5
    images = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    z = model.encode(images)
    torch.testing.assert_close(again.encode(images), z, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(again.decode(z), model.decode(z), rtol=1e-5, atol=1e-5)


def test_openclip_names_map_both_ways() -> None:
    config = transformers.CLIPTextConfig(
        hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2
    )
    weights = {
        key.removeprefix("text_model."): value
        for key, value in transformers.CLIPTextModel(config).state_dict().items()
        if "position_ids" not in key
    }
    back = openclip_to_hf(hf_to_openclip(weights))
    assert set(back) == set(weights)
    assert all(torch.equal(back[key], weights[key]) for key in weights)


def test_what_a_single_file_cannot_hold_is_refused(tmp_path: Path, make_ldm) -> None:
    with pytest.raises(CheckpointError, match="holds a UNet, a first stage and CLIP"):
        export_single_file(make_ldm(), tmp_path / "class.safetensors")
    with pytest.raises(CheckpointError, match=r"written as \.safetensors"):
        export_single_file(make_ldm(), tmp_path / "class.ckpt")


diffusers = pytest.importorskip("diffusers", reason="the cross-check needs diffusers")


@torch.no_grad()
def test_diffusers_reads_the_file_to_the_same_outputs(sd_file: Path, tmp_path: Path) -> None:
    model = ldmkit.load(sd_file)
    out, config = export_single_file(model, tmp_path / "for-diffusers.safetensors")
    clip = model.clip
    assert clip is not None
    pipe = diffusers.StableDiffusionPipeline.from_single_file(
        str(out),
        original_config=str(config),
        text_encoder=clip.model,
        tokenizer=transformers.CLIPTokenizer.from_pretrained(_tokenizer_folder(tmp_path)),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        local_files_only=True,
    )
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([10, 700])
    cond, _ = model.conditions(2, {"prompts": ["a cat", ""]}, 1.0)
    ours = model.conditional_unet(x, t, cond)
    theirs = pipe.unet(x, t, encoder_hidden_states=cond["context"]).sample
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    scale = pipe.vae.config.scaling_factor
    assert scale == pytest.approx(float(model.autoencoder.latent_scale))
    decoded = pipe.vae.decode(x / scale).sample.clamp(-1, 1)
    torch.testing.assert_close(model.decode(x), decoded, rtol=1e-4, atol=1e-4)
    # CLIP through diffusers' own reading of the SD 1.x names.
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint

    text = transformers.CLIPTextModel(clip.model.config).eval()
    converted = convert_ldm_clip_checkpoint(load_file(str(out)))
    prefix = "" if any(k.startswith("text_model.") for k in text.state_dict()) else "text_model."
    result = text.load_state_dict({k.removeprefix(prefix): v for k, v in converted.items()}, False)
    assert not [k for k in result.missing_keys if "position_ids" not in k]
    ids = clip.tokenizer(["a cat", ""], padding="max_length", return_tensors="pt").input_ids
    torch.testing.assert_close(text(ids).last_hidden_state, cond["context"])
    # A whole 10-step guided sample from the same x_T, DDIM as the file's config sets it up.
    assert (pipe.scheduler.config.steps_offset, pipe.scheduler.config.set_alpha_to_one) == (
        1,
        False,
    )
    options = SamplingOptions("ddim", 10, 3.0, spacing="leading", seed=5)
    ours = model.sample(2, prompts=["a cat", ""], options=options, latent_size=8)
    x_T = torch.stack(
        [torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(5 + i)) for i in (0, 1)]
    )
    theirs = pipe(
        ["a cat", ""],
        height=16,
        width=16,
        num_inference_steps=10,
        guidance_scale=3.0,
        latents=x_T,
        output_type="pt",
    ).images
    assert (ours * 0.5 + 0.5).clamp(0, 1).sub(theirs).abs().max() < 1e-3


def _tokenizer_folder(tmp_path: Path) -> Path:
    from ldmkit.conditioning.clip_vocab import clip_tokenizer

    folder = tmp_path / "tokenizer"
    clip_tokenizer().save_pretrained(folder)
    return folder


@torch.no_grad()
def test_a_stable_diffusion_2_file_is_written_and_read_by_diffusers(tmp_path: Path) -> None:
    _, clip, state = sd2_parts(make_parts())
    source = tmp_path / "tiny-sd2.safetensors"
    save_file(state, str(source))
    model = ldmkit.load(source, prediction="v")
    out, config = export_single_file(model, tmp_path / "sd2-again.safetensors")
    written = load_file(str(out))
    # The OpenCLIP tower goes back under its own names; its projection and logit scale, which
    # Stable Diffusion does not use and ldmkit does not keep, are left out rather than invented.
    unused = ("cond_stage_model.model.text_projection", "cond_stage_model.model.logit_scale")
    assert set(state) - set(written) == set(unused)
    assert all(torch.equal(written[k], v) for k, v in state.items() if k not in unused)
    pipe = diffusers.StableDiffusionPipeline.from_single_file(
        str(out),
        original_config=str(config),
        text_encoder=clip,
        tokenizer=transformers.CLIPTokenizer.from_pretrained(_tokenizer_folder(tmp_path)),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        local_files_only=True,
    )
    # (diffusers takes the prediction type from its own detection of a full-size 2.x file, not
    # from the YAML; the UNet's shape, linear projections and 64-wide heads come from the YAML.)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    t = torch.tensor([10, 700])
    cond, _ = model.conditions(2, {"prompts": ["a cat", ""]}, 1.0)
    ours = model.conditional_unet(x, t, cond)
    theirs = pipe.unet(x, t, encoder_hidden_states=cond["context"]).sample
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_an_inpainting_file_is_written_and_read_by_diffusers(tmp_path: Path) -> None:
    from sd_layout import UNET_CONFIG, random_weights

    from ldmkit.unet import UNet

    parts = make_parts()
    parts["unet"] = random_weights(UNet(replace(UNET_CONFIG, in_channels=9)))
    source = tmp_path / "tiny-inpainting.safetensors"
    save_file(sd1_state(parts), str(source))
    model = ldmkit.load(source)
    out, config = export_single_file(model, tmp_path / "inpainting-again.safetensors")
    pipe = diffusers.StableDiffusionInpaintPipeline.from_single_file(
        str(out),
        original_config=str(config),
        text_encoder=model.clip.model,
        tokenizer=transformers.CLIPTokenizer.from_pretrained(_tokenizer_folder(tmp_path)),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        local_files_only=True,
    )
    assert pipe.unet.config.in_channels == 9
    image = torch.rand(2, 3, 16, 16) * 2 - 1
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 3:11, 4:12] = 1.0
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    t = torch.tensor([10, 700])
    cond, _ = model.conditions(
        2,
        {"prompts": ["a cat", ""], "condition": model.spatial_condition(image=image, mask=mask)},
        1.0,
    )
    ours = model.conditional_unet(x, t, cond)
    theirs = pipe.unet(
        torch.cat([x, cond["concat"]], 1), t, encoder_hidden_states=cond["context"]
    ).sample
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_a_diffusers_sd2_tower_cut_at_23_layers_is_written_and_read_whole(tmp_path: Path) -> None:
    from ldmkit.interop.export_diffusers import export_diffusers

    # A ViT-H-deep tower (24 blocks, tiny widths) read at its penultimate layer; diffusers'
    # Stable Diffusion 2 folders keep only the 23 blocks used, and so does ldmkit's export.
    _, _, state = sd2_parts(make_parts(), layers=24)
    source = tmp_path / "sd2.safetensors"
    save_file(state, str(source))
    model = ldmkit.load(source, prediction="v")
    expected = model.conditions(1, {"prompts": ["a cat"]}, 1.0)[0]["context"]
    folder = ldmkit.load(export_diffusers(model, tmp_path / "sd2-folder"))
    assert folder.config.conditioners[0].encoder.layer == "last"  # 23 blocks, all run
    out, config = export_single_file(folder, tmp_path / "sd2-again.safetensors")
    written = load_file(str(out))
    blocks = {
        k.split(".")[4] for k in written if k.startswith("cond_stage_model.model.transformer")
    }
    assert len(blocks) == 23 and "FrozenOpenCLIPEmbedder" in config.read_text()
    again = ldmkit.load(out, prediction="v")
    assert again.config.conditioners[0].encoder.layer == "last"
    context = again.conditions(1, {"prompts": ["a cat"]}, 1.0)[0]["context"]
    torch.testing.assert_close(context, expected)
