"""Stable Diffusion 1.x single files read by `ldmkit.load`: a tiny file in SD 1.x's layout (the
original key names, random weights, tiny widths, CLIP's full vocabulary) is read back into the
same UNet, autoencoder and text encoder, from .safetensors and from .ckpt, samples
deterministically from the command line, and what is not SD 1.x is refused by name."""

import json
import os
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import ldmkit
from ldmkit.checkpoint import CheckpointError
from ldmkit.cli import app
from ldmkit.conditioning.clip_vocab import clip_tokenizer
from ldmkit.samplers import SamplingOptions
from ldmkit.unet import UNet

transformers = pytest.importorskip("transformers", reason="the CLIP encoder needs transformers")

from sd_layout import (  # noqa: E402
    SD2_UNET,
    UNET_CONFIG,
    make_parts,
    random_weights,
    sd1_state,
    sd2_parts,
)


@pytest.fixture(scope="module")
def parts() -> dict:
    return make_parts()


@pytest.fixture(scope="module")
def sd_file(parts: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sd") / "tiny-sd1.safetensors"
    save_file(sd1_state(parts), str(path))
    return path


def test_clip_tokenizer_ships_with_ldmkit() -> None:
    ids = clip_tokenizer()(["a photo of a cat"]).input_ids
    assert ids == [[49406, 320, 1125, 539, 320, 2368, 49407]]  # CLIP's ids for these words


@torch.no_grad()
def test_the_file_reads_back_into_the_same_networks(sd_file: Path, parts: dict) -> None:
    model = ldmkit.load(sd_file)
    config = model.config
    assert config.unet.channel_mult == (1, 2) and config.unet.attention_resolutions == (1,)
    assert config.unet.num_heads == 8 and config.unet.context_dim == 64
    assert config.schedule.kind == "linear" and config.loss.prediction == "eps"
    # The CompVis code's DDIM / PLMS conventions: timesteps T // S * i + 1, ending at alpha_bar_0.
    assert (config.schedule.steps_offset, config.schedule.set_alpha_to_one) == (1, False)
    assert model.autoencoder.factor == 2 and float(model.autoencoder.latent_scale) == pytest.approx(
        0.18215
    )
    original = parts["unet"].state_dict()
    assert all(torch.equal(v, original[k]) for k, v in model.unet.state_dict().items())
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    expected = parts["autoencoder"].decode(z / 0.18215).clamp(-1, 1)
    torch.testing.assert_close(model.decode(z), expected)
    cond, _ = model.conditions(1, {"prompts": ["a photo of a cat"]}, 1.0)
    ids = clip_tokenizer()(["a photo of a cat"], padding="max_length", return_tensors="pt")
    torch.testing.assert_close(cond["context"], parts["clip"](ids.input_ids).last_hidden_state)


def test_a_ckpt_reads_the_same_and_a_pickle_with_code_is_refused(
    sd_file: Path, parts: dict, tmp_path: Path
) -> None:
    ckpt = tmp_path / "tiny-sd1.ckpt"
    torch.save({"state_dict": sd1_state(parts), "global_step": 7}, ckpt)
    model = ldmkit.load(ckpt)
    original = parts["unet"].state_dict()
    assert all(torch.equal(v, original[k]) for k, v in model.unet.state_dict().items())
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):  # what a malicious checkpoint does when unpickled
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"state_dict": {}, "x": Payload()}))
    with pytest.raises(CheckpointError, match=r"holds more than tensors .* refused"):
        ldmkit.load(evil)
    assert not marker.exists()


def test_a_full_file_with_the_first_stages_loss_reads(parts: dict, tmp_path: Path) -> None:
    # sd-v1-4-full-ema and kin keep the autoencoder's training loss beside its weights.
    state = sd1_state(parts)
    state["first_stage_model.loss.logvar"] = torch.zeros(())
    state["first_stage_model.loss.discriminator.main.0.weight"] = torch.zeros(8, 3, 4, 4)
    state["model_ema.decay"] = torch.tensor(0.9999)
    path = tmp_path / "full.safetensors"
    save_file(state, str(path))
    model = ldmkit.load(path)
    original = parts["autoencoder"].state_dict()
    read = {k: v for k, v in model.autoencoder.state_dict().items() if not k.startswith("latent_")}
    assert all(torch.equal(v, original[k]) for k, v in read.items())


def test_ema_weights_are_taken_with_ema(parts: dict, tmp_path: Path) -> None:
    state = sd1_state(parts)
    unet = parts["unet"].state_dict()
    for key, value in unet.items():  # CompVis LitEma: the name under diffusion_model, no dots
        state["model_ema.diffusion_model" + key.replace(".", "")] = value + 1.0
    path = tmp_path / "with-ema.safetensors"
    save_file(state, str(path))
    plain, averaged = ldmkit.load(path), ldmkit.load(path, ema=True)
    key = "input_blocks.0.0.weight"
    assert torch.equal(plain.unet.state_dict()[key], unet[key])
    assert torch.equal(averaged.unet.state_dict()[key], unet[key] + 1.0)
    save_file(sd1_state(parts), str(tmp_path / "no-ema.safetensors"))
    with pytest.raises(CheckpointError, match=r"holds no EMA weights \(model_ema\.\*\)"):
        ldmkit.load(tmp_path / "no-ema.safetensors", ema=True)


def test_half_precision_weights_are_read_straight_into_the_unet(
    sd_file: Path, parts: dict, tmp_path: Path
) -> None:
    from ldmkit.interop.cast_read import read_cast

    # read_cast gives what the mapped file gives, cast (integers and empty tensors as stored).
    odd = {"ints": torch.arange(5), "empty": torch.zeros(0, 3), "scalar": torch.tensor(2.5)}
    save_file(odd | {"w": torch.randn(3, 4)}, str(tmp_path / "odd.safetensors"))
    read = read_cast(tmp_path / "odd.safetensors", ["w", "ints", "empty", "scalar"], torch.bfloat16)
    mapped = load_file(str(tmp_path / "odd.safetensors"))
    assert torch.equal(read["w"], mapped["w"].bfloat16()) and read["ints"].dtype == torch.int64
    assert read["empty"].shape == (0, 3) and float(read["scalar"]) == 2.5
    # The whole model: the UNet in bf16, equal to the float32 weights cast; the rest float32.
    original = parts["unet"].state_dict()
    unet_keys = len(original)
    for path in (sd_file, _as_ckpt(parts, tmp_path)):
        model = ldmkit.load(path, precision="bf16")
        assert model.weight_precision == "bf16"
        held = model.unet.state_dict()
        assert len(held) == unet_keys
        assert all(torch.equal(v, original[k].bfloat16()) for k, v in held.items())
        assert next(model.autoencoder.parameters()).dtype == torch.float32
        options = SamplingOptions(steps=2, precision="bf16", seed=0)
        assert model.sample(1, prompts=["a cat"], options=options).isfinite().all()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(sd_file.read_bytes()[:-1000])
    with pytest.raises(CheckpointError):
        ldmkit.load(cut, precision="bf16")


def test_the_text_encoder_holds_the_files_tensors_without_a_copy(sd_file: Path) -> None:
    """CLIP is built on the meta device and given the file's tensors: no randomly initialised
    copy first (an SD 1.5 file's sampling peak was 0.46 GiB higher with one)."""
    from ldmkit.interop.single_file import clip_from_state

    state = load_file(str(sd_file))
    clip = clip_from_state(state, sd_file).model
    stored = {t.data_ptr() for t in state.values()}
    weights = dict(clip.named_parameters())
    assert weights and all(p.data_ptr() in stored for p in weights.values())
    (name, positions), *_ = [(n, b) for n, b in clip.named_buffers() if n.endswith("position_ids")]
    assert torch.equal(positions[0], torch.arange(positions.shape[-1])), name
    unset = [n for n, t in (*clip.named_parameters(), *clip.named_buffers()) if t.is_meta]
    assert unset == []


def _as_ckpt(parts: dict, tmp_path: Path) -> Path:
    path = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": sd1_state(parts)}, path)
    return path


@pytest.mark.parametrize("sampler", ["ddim", "DPM++ 2M SDE Karras", "Euler a"])
def test_sampling_from_the_command_line_is_deterministic(
    sd_file: Path, tmp_path: Path, sampler: str
) -> None:
    runs = []
    for name in ("a.png", "b.png"):
        out = tmp_path / name
        arguments = ["sample", "--checkpoint", str(sd_file), "--prompt", "a photo of a cat"]
        arguments += ["--n", "1", "--steps", "3", "--latent-size", "8", "--out", str(out)]
        result = CliRunner().invoke(app, [*arguments, "--sampler", sampler])
        assert result.exit_code == 0, result.output
        runs.append(Image.open(out).tobytes())
    assert runs[0] == runs[1]
    recorded = json.loads(Image.open(tmp_path / "a.png").text["ldmkit"])
    options = SamplingOptions(sampler)
    assert (recorded["sampler"], recorded["karras"]) == (options.sampler, options.karras)


def test_other_files_are_refused_by_name(sd_file: Path, parts: dict, tmp_path: Path) -> None:
    state = sd1_state(parts)
    with pytest.raises(CheckpointError, match=r"a Stable Diffusion 1\.x file: it predicts eps"):
        ldmkit.load(sd_file, prediction="v")
    save_file({"encoder.weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(
        CheckpointError, match="not a latent diffusion checkpoint ldmkit recognises"
    ):
        ldmkit.load(tmp_path / "other.safetensors")
    # The CompVis code's "sqrt" schedule (betas the square roots of a linear ramp): no kind of
    # ldmkit's.
    state["betas"] = torch.linspace(1e-4, 2e-2, 1000).sqrt()
    save_file(state, str(tmp_path / "betas.safetensors"))
    with pytest.raises(CheckpointError, match="betas follow neither"):
        ldmkit.load(tmp_path / "betas.safetensors")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="nor a checkpoint file"):
        ldmkit.load(tmp_path / "notes.txt")


@torch.no_grad()
def test_a_stable_diffusion_2_file_reads_its_openclip_tower(parts: dict, tmp_path: Path) -> None:
    unet, clip, state = sd2_parts(parts)
    path = tmp_path / "tiny-sd2.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))

    model = ldmkit.load(path)  # no global_step: read as the 768-v model, and said
    assert model.config.loss.prediction == "v" and model.config.latent_size == 96
    assert model.config.unet.num_head_channels == 64 and model.config.unet.use_linear_in_transformer
    original = unet.state_dict()
    assert all(torch.equal(v, original[k]) for k, v in model.unet.state_dict().items())
    assert ldmkit.load(path, prediction="eps").config.loss.prediction == "eps"
    base = tmp_path / "tiny-sd2-base.ckpt"  # the 512 base model's .ckpt records its steps
    torch.save({"state_dict": state, "global_step": 875000}, base)
    assert ldmkit.load(base).config.loss.prediction == "eps"
    # The context is OpenCLIP's penultimate layer, final LayerNorm applied, "!"-padded prompts.
    cond, _ = model.conditions(1, {"prompts": ["a photo of a cat"]}, 1.0)
    ids = clip_tokenizer(pad_token="!")(
        ["a photo of a cat"], padding="max_length", return_tensors="pt"
    ).input_ids
    assert ids[0, 7:].eq(0).all()  # after the end of text: "!" (id 0)
    hidden = clip(ids, output_hidden_states=True).hidden_states[-2]
    torch.testing.assert_close(cond["context"], clip.final_layer_norm(hidden))


def test_the_original_yaml_config_overrides_detection(sd_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "v1-inference-v.yaml"
    config.write_text(
        "model:\n"
        "  params:\n"
        "    parameterization: v\n"
        "    scale_factor: 0.5\n"
        "    image_size: 32\n"
        "    unet_config:\n"
        "      params:\n"
        "        num_heads: 8\n"
    )
    model = ldmkit.load(sd_file, original_config=config)
    assert model.config.loss.prediction == "v" and model.config.latent_size == 32
    assert float(model.autoencoder.latent_scale) == 0.5 and model.config.unet.num_heads == 8
    with pytest.raises(CheckpointError, match="give --config or --prediction, not both"):
        ldmkit.load(sd_file, original_config=config, prediction="eps")
    config.write_text("model: {target: ldm.models.diffusion.ddpm.LatentDiffusion}\n")
    with pytest.raises(CheckpointError, match="not an original LDM / Stable Diffusion config"):
        ldmkit.load(sd_file, original_config=config)
    arguments = ["sample", "--checkpoint", str(tmp_path), "--config", str(config)]
    result = CliRunner().invoke(app, [*arguments, "--prompt", "a cat"])
    assert result.exit_code == 2 and "are for single files" in result.output


def test_plain_linear_betas_are_recognised() -> None:
    from ldmkit.diffusion import beta_linear_schedule
    from ldmkit.interop.single_file import schedule_from_state

    # DDPM's schedule, linear in beta (the CompVis code's "sqrt_linear"), stored in float32.
    config = schedule_from_state({"betas": torch.linspace(0.0001, 0.02, 1000)})
    assert (config.kind, config.beta_start, config.beta_end) == ("beta_linear", 0.0001, 0.02)
    assert (config.num_timesteps, config.steps_offset) == (1000, 1)
    betas = beta_linear_schedule(500, 0.0015, 0.0195).betas.float()
    config = schedule_from_state({"betas": betas})
    assert (config.kind, config.num_timesteps, config.beta_end) == ("beta_linear", 500, 0.0195)
    sqrt_linear = schedule_from_state({"betas": torch.linspace(0.0001**0.5, 0.02**0.5, 1000) ** 2})
    assert sqrt_linear.kind == "linear"  # LDM's, as before


def test_a_zero_terminal_snr_file_is_recognised(parts: dict, tmp_path: Path) -> None:
    from ldmkit.diffusion import ScheduleConfig, build_schedule
    from ldmkit.interop.single_file import schedule_from_state

    rescaled = build_schedule(ScheduleConfig(zero_terminal_snr=True))
    config = schedule_from_state({"betas": rescaled.betas.float()})
    assert config.zero_terminal_snr and (config.beta_start, config.beta_end) == pytest.approx(
        (0.00085, 0.012)
    )


def test_an_inpainting_file_fills_a_hole_from_the_command_line(parts: dict, tmp_path: Path) -> None:
    # Stable Diffusion's inpainting layout: a 9-channel UNet (z_t, mask, encoded known part).
    torch.manual_seed(3)
    inpainting = {**parts, "unet": random_weights(UNet(replace(UNET_CONFIG, in_channels=9)))}
    path = tmp_path / "tiny-sd1-inpainting.safetensors"
    save_file(sd1_state(inpainting), str(path))
    model = ldmkit.load(path)
    assert model.spatial is not None and model.spatial.layout == "stable_diffusion"
    assert model.config.schedule.steps_offset == 1
    picture = tmp_path / "picture.png"
    Image.fromarray((torch.rand(16, 16, 3) * 255).byte().numpy()).save(picture)
    hole = torch.zeros(16, 16, dtype=torch.uint8)
    hole[4:12, 4:12] = 255
    mask = tmp_path / "mask.png"
    Image.fromarray(hole.numpy()).convert("RGB").save(mask)
    out = tmp_path / "filled.png"
    arguments = ["inpaint", "--checkpoint", str(path), "--image", str(picture), "--mask"]
    arguments += [str(mask), "--prompt", "a cat", "--steps", "3", "--out", str(out)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    filled = torch.from_numpy(np.asarray(Image.open(out))).float()
    original = torch.from_numpy(np.asarray(Image.open(picture))).float()
    assert torch.equal(filled[hole == 0], original[hole == 0])  # the known pixels kept
    assert (filled[hole > 0] - original[hole > 0]).abs().mean() > 1  # the hole painted anew
    assert json.loads(Image.open(out).text["ldmkit"])["prompt"] == "a cat"


def test_unet_widths_not_read_yet_are_named() -> None:
    from ldmkit.interop.concat_inputs import concat_conditioners

    assert concat_conditioners(4, 4, "f") == ()
    assert concat_conditioners(9, 4, "f")[0].map.layout == "stable_diffusion"
    with pytest.raises(CheckpointError, match=r"takes 5 input channels.*not yet depth-to-image"):
        concat_conditioners(5, 4, "depth.safetensors")


# A tiny x4 upscaler: 128-wide transformers reading a 64-wide context in attn1 (the x4
# upscaler's outer levels), a 1000-row noise-level table.
X4_UNET = replace(
    SD2_UNET,
    in_channels=7,
    num_classes=1000,
    channel_mult=(2, 2),
    only_cross_attention=(True, False),
    num_heads=8,  # x4-upscaling.yaml: 8 heads at every level, not 2.x's 64-wide heads
    num_head_channels=None,
)


def _x4_upscaler_file(path: Path) -> Path:
    """A tiny x4 upscaler single file (`X4_UNET`, OpenCLIP, an f=2 first stage) at `path`."""
    _, _, state = sd2_parts(make_parts())
    torch.manual_seed(4)
    unet = random_weights(UNet(X4_UNET))
    state = {k: v for k, v in state.items() if not k.startswith("model.diffusion_model.")}
    state |= {f"model.diffusion_model.{k}": v.contiguous() for k, v in unet.state_dict().items()}
    save_file(state, str(path))
    return path


def test_an_x4_upscaler_file_reads_as_a_noise_augmented_upscaler(tmp_path: Path) -> None:
    config = X4_UNET
    path = _x4_upscaler_file(tmp_path / "tiny-x4-upscaler.safetensors")
    model = ldmkit.load(path)
    assert model.config.loss.prediction == "v" and model.config.unet == config
    assert float(model.autoencoder.latent_scale) == pytest.approx(0.08333)
    spatial = model.spatial
    assert spatial is not None and (spatial.kind, spatial.noise_levels) == (
        "super_resolution",
        1000,
    )
    low = torch.rand(1, 3, 8, 8) * 2 - 1
    condition = model.spatial_condition(low_res=low, generator=torch.Generator().manual_seed(0))
    cond, uncond = model.conditions(1, {"prompts": ["a cat"], "condition": condition}, 3.0)
    assert cond["y"].tolist() == uncond["y"].tolist() == [20]  # the level, in both branches
    with pytest.raises(CheckpointError, match="the x4 upscaler: it predicts v"):
        ldmkit.load(path, prediction="eps")
    picture = tmp_path / "low.png"
    Image.fromarray((torch.rand(8, 8, 3) * 255).byte().numpy()).save(picture)
    out = tmp_path / "up.png"
    arguments = ["upscale", str(picture), str(out), "--checkpoint", str(path), "--prompt", "a cat"]
    result = CliRunner().invoke(app, [*arguments, "--noise-level", "30", "--steps", "2"])
    assert result.exit_code == 0, result.output
    # The image is concatenated at the latent's side: x f (4 for the real file, 2 for this one).
    assert Image.open(out).size == (16, 16)
    assert json.loads(Image.open(out).text["ldmkit"])["noise_level"] == "30"
    result = CliRunner().invoke(app, [*arguments, "--noise-level", "400", "--steps", "2"])
    assert result.exit_code == 2 and "noise_level must lie in [0, 350]" in result.output
    # Written back as a single file with its original YAML, and read again the same.
    from ldmkit.interop.export_single_file import export_single_file

    out, yaml_path = export_single_file(model, tmp_path / "x4-again.safetensors")
    assert "LatentUpscaleDiffusion" in yaml_path.read_text()
    for again in (ldmkit.load(out), ldmkit.load(out, original_config=yaml_path)):
        assert again.config.unet == config and again.spatial == model.spatial
        attn1 = again.unet.input_blocks[1][1].transformer_blocks[0].attn1
        ours = model.unet.input_blocks[1][1].transformer_blocks[0].attn1
        assert torch.equal(attn1.to_k.weight, ours.to_k.weight)


X4_YAML = """\
model:
  target: ldm.models.diffusion.ddpm.LatentUpscaleDiffusion
  params:
    parameterization: v
    scale_factor: 0.08333
    image_size: 128
    low_scale_key: lr
    low_scale_config:
      target: ldm.modules.diffusionmodules.upscaling.ImageConcatWithNoiseAugmentation
      params:
        noise_schedule_config:
          linear_start: 0.0002
          linear_end: 0.03
        max_noise_level: 250
    unet_config:
      params:
        num_classes: 1000
        num_heads: 8
        disable_self_attentions: [true, false]
"""


def test_an_x4_yamls_low_scale_config_sets_the_noise_augmentation(tmp_path: Path) -> None:
    from ldmkit.conditioning.spatial import noise_augmented

    path = _x4_upscaler_file(tmp_path / "tiny-x4-upscaler.safetensors")
    yaml_path = tmp_path / "x4-upscaling.yaml"
    yaml_path.write_text(X4_YAML)
    model = ldmkit.load(path, original_config=yaml_path)
    spatial = model.spatial
    assert spatial is not None and model.config.unet == X4_UNET
    assert (spatial.noise_beta_start, spatial.noise_beta_end) == (0.0002, 0.03)
    assert (spatial.max_noise_level, spatial.noise_levels) == (250, 1000)
    # ... and the augmentation follows them: noise level 250 of the YAML's schedule.
    low = torch.rand(1, 3, 8, 8) * 2 - 1
    condition = model.spatial_condition(low_res=low, generator=torch.Generator().manual_seed(0))
    expected = noise_augmented(low, spatial, torch.Generator().manual_seed(0))
    torch.testing.assert_close(condition, expected)
    with pytest.raises(ValueError, match=r"noise_level must lie in \[0, 250\]"):
        model.set_noise_level(300)

    # A YAML without low_scale_config keeps the x4 upscaler's values.
    block = X4_YAML[X4_YAML.index("    low_scale_config:") : X4_YAML.index("    unet_config:")]
    yaml_path.write_text(X4_YAML.replace(block, ""))
    spatial = ldmkit.load(path, original_config=yaml_path).spatial
    assert spatial is not None and (spatial.noise_beta_start, spatial.noise_beta_end) == (
        0.0001,
        0.02,
    )
    assert spatial.max_noise_level == 350

    # What ldmkit's augmentation cannot follow is named.
    for old, new, message in [
        ("max_noise_level: 250", "max_noise_level: 1000", r"max_noise_level must be .* \[0, 999\]"),
        ("linear_end: 0.03", "linear_end: 0.03\n          beta_schedule: cosine", "'cosine'"),
        ("linear_end: 0.03", "linear_end: 0.03\n          timesteps: 500", "timesteps is 500"),
        ("linear_start: 0.0002", "linear_start: 0.3", "0 < linear_start <= linear_end"),
    ]:
        yaml_path.write_text(X4_YAML.replace(old, new))
        with pytest.raises(CheckpointError, match=message):
            ldmkit.load(path, original_config=yaml_path)
