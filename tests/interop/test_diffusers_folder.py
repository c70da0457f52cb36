"""A diffusers Stable Diffusion folder read offline by `ldmkit.load`: a tiny random pipeline is
saved by diffusers itself, then ldmkit's schedule, text context, denoiser output and decoder
must equal the pipeline's own, and sampling runs from the command line."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import ldmkit
from ldmkit.checkpoint import CheckpointError
from ldmkit.cli import app
from ldmkit.samplers import SamplingOptions

diffusers = pytest.importorskip("diffusers", reason="needs the test extra: pip install diffusers")
transformers = pytest.importorskip("transformers", reason="needs transformers (CLIP)")

PROMPTS = ["a cat", ""]


def _randomised(module: torch.nn.Module, scale: float) -> torch.nn.Module:
    with torch.no_grad():  # every parameter random, so no mapping error hides behind an init
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * scale)
    return module.eval()


@pytest.fixture(scope="module")
def pipeline_folder(tiny_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A StableDiffusionPipeline in miniature (CLIP width 32, f=2 VAE, 8x8 latents, v-prediction
    on the scaled-linear schedule), written by diffusers' save_pretrained."""
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(16, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=16,
        scaling_factor=0.5,
    )
    scheduler = diffusers.DDIMScheduler(  # Stable Diffusion 2's settings
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type="v_prediction",
        steps_offset=1,
        set_alpha_to_one=False,
        clip_sample=False,
        timestep_spacing="leading",
    )
    pipe = diffusers.StableDiffusionPipeline(
        vae=_randomised(vae, 0.2),
        text_encoder=transformers.CLIPTextModel.from_pretrained(tiny_clip),
        tokenizer=transformers.CLIPTokenizer.from_pretrained(tiny_clip),
        unet=_randomised(unet, 0.1),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    folder = tmp_path_factory.mktemp("diffusers") / "tiny-sd"
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def reference(pipeline_folder: Path) -> "diffusers.StableDiffusionPipeline":
    return diffusers.StableDiffusionPipeline.from_pretrained(pipeline_folder, local_files_only=True)


def test_schedule_and_objective_come_from_the_scheduler(pipeline_folder: Path, reference) -> None:
    model = ldmkit.load(pipeline_folder)
    assert model.config.loss.prediction == "v"
    schedule = model.config.schedule
    assert (schedule.steps_offset, schedule.set_alpha_to_one) == (1, False)
    resolved = model.resolve(SamplingOptions("ddim"))
    assert (resolved.steps_offset, resolved.final) == (1, "sigma_min")
    assert model.resolve(SamplingOptions("euler")).final is None  # DDIM's and PLMS's setting
    torch.testing.assert_close(
        model.schedule.alpha_bar.float(), reference.scheduler.alphas_cumprod, rtol=1e-6, atol=0
    )


@torch.no_grad()
def test_context_denoiser_and_decoder_equal_the_pipelines(pipeline_folder: Path, reference) -> None:
    model = ldmkit.load(pipeline_folder)
    ids = reference.tokenizer(
        PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    ).input_ids
    context = reference.text_encoder(ids)[0]
    cond, _ = model.conditions(2, {"prompts": PROMPTS}, 1.0)
    torch.testing.assert_close(cond["context"], context)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([10, 700])
    ours = model.conditional_unet(x, t, cond)
    theirs = reference.unet(x, t, encoder_hidden_states=context).sample
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    scale = reference.vae.config.scaling_factor
    decoded = reference.vae.decode(x / scale).sample.clamp(-1, 1)
    torch.testing.assert_close(model.decode(x), decoded, rtol=1e-4, atol=1e-4)


# ldmkit's sampler options -> the diffusers scheduler (with its settings) that should agree.
SAME_SAMPLERS = [
    (SamplingOptions("ddim", 10, 3.0, spacing="leading"), "DDIMScheduler", {}),
    (SamplingOptions("Euler", 10, 3.0), "EulerDiscreteScheduler", {"timestep_spacing": "linspace"}),
    (SamplingOptions("Heun", 10, 3.0), "HeunDiscreteScheduler", {"timestep_spacing": "linspace"}),
    (
        SamplingOptions("DPM++ 2M Karras", 10, 3.0),
        "DPMSolverMultistepScheduler",
        {"use_karras_sigmas": True, "lower_order_final": False, "final_sigmas_type": "zero"},
    ),
]


@pytest.mark.parametrize(("options", "scheduler", "settings"), SAME_SAMPLERS)
@torch.no_grad()
def test_a_ten_step_sample_equals_the_pipelines(
    pipeline_folder: Path, reference, options: SamplingOptions, scheduler: str, settings: dict
) -> None:
    model = ldmkit.load(pipeline_folder)
    ours = model.sample(2, prompts=PROMPTS, options=options.replace(seed=7))
    # The same x_T: ldmkit draws sample i's from a generator seeded seed + i.
    x_T = torch.stack(
        [torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(7 + i)) for i in (0, 1)]
    )
    pipe = diffusers.StableDiffusionPipeline(**{**reference.components})
    pipe.scheduler = getattr(diffusers, scheduler).from_config(
        reference.scheduler.config, **settings
    )
    pipe.scheduler.set_timesteps(10)
    start = x_T
    if float(pipe.scheduler.init_noise_sigma) != 1.0:  # Euler: x in the sigma-scaled form
        # diffusers scales x_T by sigma_max ("linspace"); ldmkit by sqrt(1 + sigma_max^2).
        sigma = pipe.scheduler.sigmas[0].item()
        start = x_T * (sigma**2 + 1) ** 0.5 / float(pipe.scheduler.init_noise_sigma)
    theirs = pipe(
        PROMPTS,
        height=16,
        width=16,
        num_inference_steps=10,
        guidance_scale=3.0,
        latents=start,
        output_type="pt",
    ).images
    assert (ours * 0.5 + 0.5).clamp(0, 1).sub(theirs).abs().max() < 1e-3


def test_samples_from_python_and_the_command_line(pipeline_folder: Path, tmp_path: Path) -> None:
    images = ldmkit.load(pipeline_folder).sample(
        2, prompts=PROMPTS, options=SamplingOptions(steps=2, guidance=3.0)
    )
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()
    out = tmp_path / "cats.png"
    arguments = ["sample", "--checkpoint", str(pipeline_folder), "--prompt", "a cat"]
    result = CliRunner().invoke(app, [*arguments, "--n", "1", "--steps", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file()


def test_what_cannot_be_read_is_named(pipeline_folder: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(pipeline_folder, other)
    index = json.loads((other / "model_index.json").read_text())
    (other / "model_index.json").write_text(json.dumps({**index, "_class_name": "FluxPipeline"}))
    with pytest.raises(CheckpointError, match="a diffusers FluxPipeline folder; ldmkit reads"):
        ldmkit.load(other)
    (other / "model_index.json").write_text(json.dumps(index))
    scheduler = other / "scheduler" / "scheduler_config.json"
    config = json.loads(scheduler.read_text())
    scheduler.write_text(json.dumps({**config, "beta_schedule": "sigmoid"}))
    with pytest.raises(CheckpointError, match="beta_schedule 'sigmoid' is not supported"):
        ldmkit.load(other)
    scheduler.write_text(json.dumps(config))
    weights = other / "unet" / "diffusion_pytorch_model.safetensors"
    weights.unlink()
    (other / "unet" / "diffusion_pytorch_model.bin").write_bytes(
        b"\x80\x04\x95\x1b\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x94\x8c\x04exec\x94\x93\x94."
    )
    with pytest.raises(CheckpointError, match="refused"):
        ldmkit.load(other)
    with pytest.raises(CheckpointError, match="neither an ldmkit checkpoint folder"):
        ldmkit.load(tmp_path)


@pytest.fixture(scope="module")
def inpaint_folder(pipeline_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pipeline as a StableDiffusionInpaintPipeline: a 9-channel UNet (z_t, the mask,
    the encoded known part), saved by diffusers."""
    reference = diffusers.StableDiffusionPipeline.from_pretrained(
        pipeline_folder, local_files_only=True
    )
    torch.manual_seed(1)
    unet_config = {**reference.unet.config, "in_channels": 9}
    unet = diffusers.UNet2DConditionModel.from_config(unet_config)
    pipe = diffusers.StableDiffusionInpaintPipeline(
        **{**reference.components, "unet": _randomised(unet, 0.1)}
    )
    folder = tmp_path_factory.mktemp("diffusers") / "tiny-sd-inpaint"
    pipe.save_pretrained(folder)
    return folder


@torch.no_grad()
def test_an_inpainting_pipeline_samples_as_diffusers_does(inpaint_folder: Path) -> None:
    model = ldmkit.load(inpaint_folder)
    assert model.spatial is not None and model.spatial.layout == "stable_diffusion"
    pipe = diffusers.StableDiffusionInpaintPipeline.from_pretrained(
        inpaint_folder, local_files_only=True
    )
    image = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, 4:12, 2:10] = 1.0
    condition = model.spatial_condition(image=image, mask=mask)
    # diffusers' construction: the mask resized by nearest, the known part (mask < 0.5) encoded
    # (its distribution's mode, so that both sides are deterministic) and scaled.
    known = pipe.vae.encode(image * (mask < 0.5)).latent_dist.mode()
    known = known * pipe.vae.config.scaling_factor
    small = torch.nn.functional.interpolate(mask, size=(8, 8))
    torch.testing.assert_close(condition, torch.cat([small, known], 1), rtol=1e-5, atol=1e-5)
    options = SamplingOptions("ddim", 10, 3.0, spacing="leading", seed=3)
    ours = model.sample(2, prompts=PROMPTS, condition=condition, options=options)
    x_T = torch.stack(
        [torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(3 + i)) for i in (0, 1)]
    )
    theirs = pipe(
        PROMPTS,
        image=image * 0.5 + 0.5,
        mask_image=mask,
        masked_image_latents=known,
        height=16,
        width=16,
        num_inference_steps=10,
        guidance_scale=3.0,
        latents=x_T,
        output_type="pt",
    ).images
    assert (ours * 0.5 + 0.5).clamp(0, 1).sub(theirs).abs().max() < 1e-3


@pytest.fixture(scope="module")
def upscale_folder(pipeline_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A StableDiffusionUpscalePipeline in miniature: a 7-channel UNet with a noise-level
    embedding, an f=4 VAE scaled by 0.08333, v-prediction, saved by diffusers."""
    reference = diffusers.StableDiffusionPipeline.from_pretrained(
        pipeline_folder, local_files_only=True
    )
    torch.manual_seed(2)
    unet = diffusers.UNet2DConditionModel.from_config(
        # The x4 upscaler's outer levels read the context in attn1 too (only_cross_attention).
        {
            **reference.unet.config,
            "in_channels": 7,
            "num_class_embeds": 1000,
            "only_cross_attention": [True, False],
        }
    )
    vae = diffusers.AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        scaling_factor=0.08333,
    )
    schedule = {"beta_schedule": "scaled_linear", "beta_start": 0.0001, "beta_end": 0.02}
    pipe = diffusers.StableDiffusionUpscalePipeline(
        vae=_randomised(vae, 0.2),
        text_encoder=reference.text_encoder,
        tokenizer=reference.tokenizer,
        unet=_randomised(unet, 0.1),
        low_res_scheduler=diffusers.DDPMScheduler(**schedule),
        scheduler=diffusers.DDIMScheduler(
            **schedule, prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=False,
            steps_offset=1,
        ),
        max_noise_level=350,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("diffusers") / "tiny-sd-x4"
    pipe.save_pretrained(folder)
    return folder


@torch.no_grad()
def test_an_upscaling_pipeline_samples_as_diffusers_does(upscale_folder: Path) -> None:
    model = ldmkit.load(upscale_folder)
    spatial = model.spatial
    assert spatial is not None and (spatial.noise_levels, spatial.max_noise_level) == (1000, 350)
    assert model.config.unet.only_cross_attention == (True, False)
    pipe = diffusers.StableDiffusionUpscalePipeline.from_pretrained(
        upscale_folder, local_files_only=True
    )
    low = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(4)) * 2 - 1
    # The low-resolution image noised to level 20 with noise from the same generator.
    condition = model.spatial_condition(low_res=low, generator=torch.Generator().manual_seed(11))
    options = SamplingOptions("ddim", 10, 3.0, spacing="leading", seed=3)
    ours = model.sample(2, prompts=PROMPTS, condition=condition, options=options)
    assert ours.shape == (2, 3, 32, 32)
    x_T = torch.stack(
        [torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(3 + i)) for i in (0, 1)]
    )
    theirs = pipe(
        PROMPTS,
        image=low * 0.5 + 0.5,  # diffusers takes [0, 1]
        noise_level=20,
        num_inference_steps=10,
        guidance_scale=3.0,
        generator=torch.Generator().manual_seed(11),
        latents=x_T,
        output_type="pt",
    ).images
    assert (ours * 0.5 + 0.5).clamp(0, 1).sub(theirs).abs().max() < 1e-3


def test_an_upscaler_exports_as_an_upscaling_pipeline(upscale_folder: Path, tmp_path: Path) -> None:
    from ldmkit.interop.export_diffusers import export_diffusers

    out = export_diffusers(ldmkit.load(upscale_folder), tmp_path / "x4-again")
    pipe = diffusers.DiffusionPipeline.from_pretrained(out, local_files_only=True)
    assert type(pipe).__name__ == "StableDiffusionUpscalePipeline"
    assert pipe.config.max_noise_level == 350 and pipe.low_res_scheduler.config.beta_end == 0.02
    assert ldmkit.load(out).spatial.noise_levels == 1000


def test_a_folder_saved_as_an_fp16_variant_reads(pipeline_folder: Path, tmp_path: Path) -> None:
    other = tmp_path / "fp16"
    shutil.copytree(pipeline_folder, other)
    for part in ("unet", "vae"):
        weights = other / part / "diffusion_pytorch_model.safetensors"
        weights.rename(weights.with_name("diffusion_pytorch_model.fp16.safetensors"))
    x = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(ldmkit.load(other).decode(x), ldmkit.load(pipeline_folder).decode(x))
