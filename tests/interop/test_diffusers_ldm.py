"""The paper's own pipelines in diffusers' format read by `ldmkit.load`: a tiny random
`LDMTextToImagePipeline` (LDMBert over word pieces, a KL first stage) saved by diffusers samples
as the pipeline does; a VQModel first stage (what diffusers' `LDMPipeline` uses) reads too."""

import json
from pathlib import Path

import pytest
import torch

import ldmkit
from ldmkit.samplers import SamplingOptions

diffusers = pytest.importorskip("diffusers", reason="needs the test extra: pip install diffusers")
transformers = pytest.importorskip("transformers", reason="BERT's tokenizer is transformers'")
from diffusers.pipelines.latent_diffusion.pipeline_latent_diffusion import (  # noqa: E402
    LDMBertConfig,
    LDMBertModel,
)

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "cat", "photo", "of", "dog"]
PROMPTS = ["a photo of a cat", "a dog"]


def _randomised(module: torch.nn.Module, scale: float) -> torch.nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * scale)
    return module.eval()


@pytest.fixture(scope="module")
def ldm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    bert = LDMBertModel(
        LDMBertConfig(
            vocab_size=len(WORDS), max_position_embeddings=77, d_model=32, encoder_layers=2,
            encoder_attention_heads=2, head_dim=8, encoder_ffn_dim=48,
        )
    )  # fmt: skip
    tokenizer = transformers.BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)})
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64),
        layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        attention_head_dim=8, norm_num_groups=8,
    )  # fmt: skip
    vae = diffusers.AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(16, 32), layers_per_block=1, latent_channels=4, norm_num_groups=8,
    )  # fmt: skip
    scheduler = diffusers.DDIMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False
    )
    pipe = diffusers.LDMTextToImagePipeline(
        vqvae=_randomised(vae, 0.2),
        bert=_randomised(bert, 0.2),
        tokenizer=tokenizer,
        unet=_randomised(unet, 0.1),
        scheduler=scheduler,
    )
    folder = tmp_path_factory.mktemp("diffusers") / "tiny-ldm-text2im"
    pipe.save_pretrained(folder)
    return folder


@torch.no_grad()
def test_a_text_to_image_ldm_pipeline_samples_as_diffusers_does(ldm_folder: Path) -> None:
    model = ldmkit.load(ldm_folder)
    assert model.conditioner("prompts").kind == "bert"
    pipe = diffusers.LDMTextToImagePipeline.from_pretrained(ldm_folder, local_files_only=True)
    ids = pipe.tokenizer(PROMPTS, padding="max_length", max_length=77, return_tensors="pt")
    cond, _ = model.conditions(2, {"prompts": PROMPTS}, 1.0)
    torch.testing.assert_close(cond["context"], pipe.bert(ids.input_ids)[0])
    options = SamplingOptions("ddim", 10, 3.0, spacing="leading", seed=3)
    ours = model.sample(2, prompts=PROMPTS, options=options)
    x_T = torch.stack(
        [torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(3 + i)) for i in (0, 1)]
    )
    theirs = pipe(
        # (the pipeline takes latents at height // 8; this f=2 first stage decodes them to 16)
        PROMPTS, height=64, width=64, num_inference_steps=10, guidance_scale=3.0, latents=x_T,
        output_type="pt",
    ).images  # fmt: skip
    assert (ours * 0.5 + 0.5).clamp(0, 1).sub(theirs).abs().max() < 1e-3


@torch.no_grad()
def test_a_vqmodel_first_stage_reads(tmp_path: Path) -> None:
    torch.manual_seed(1)
    vqvae = _randomised(
        diffusers.VQModel(
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            block_out_channels=(16, 32), layers_per_block=1, latent_channels=3,
            norm_num_groups=8, num_vq_embeddings=32,
        ),
        0.2,
    )  # fmt: skip
    from ldmkit.interop.diffusers_autoencoder import autoencoder_from_diffusers

    ours = autoencoder_from_diffusers(vqvae.state_dict(), dict(vqvae.config))
    assert ours.config.kind == "vq" and ours.config.codebook_size == 32
    images = torch.rand(1, 3, 16, 16) * 2 - 1
    h = vqvae.encode(images).latents
    torch.testing.assert_close(ours.encode(images).mode(), h, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.decode(h), vqvae.decode(h).sample, rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_an_ldmbert_model_exports_as_an_ldm_text_to_image_pipeline(ldm_folder: Path, tmp_path):
    from ldmkit.interop.export_diffusers import export_diffusers

    model = ldmkit.load(ldm_folder)
    out = export_diffusers(model, tmp_path / "again")
    pipe = diffusers.DiffusionPipeline.from_pretrained(out, local_files_only=True)
    assert type(pipe).__name__ == "LDMTextToImagePipeline"
    ids = pipe.tokenizer(PROMPTS, padding="max_length", max_length=77, return_tensors="pt")
    cond, _ = model.conditions(2, {"prompts": PROMPTS}, 1.0)
    torch.testing.assert_close(pipe.bert(ids.input_ids)[0], cond["context"])
    again, _ = ldmkit.load(out).conditions(2, {"prompts": PROMPTS}, 1.0)
    torch.testing.assert_close(again["context"], cond["context"])


def _unconditional_pipeline(scheduler) -> "diffusers.LDMPipeline":
    """A tiny unconditional LDMPipeline (a UNet2DModel with plain attention, a VQModel)."""
    torch.manual_seed(5)
    unet = diffusers.UNet2DModel(
        sample_size=8, in_channels=3, out_channels=3, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"), layers_per_block=1, attention_head_dim=16,
        norm_num_groups=8,
    )  # fmt: skip
    vqvae = diffusers.VQModel(
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(16, 32), layers_per_block=1, latent_channels=3, norm_num_groups=8,
        num_vq_embeddings=32,
    )  # fmt: skip
    return diffusers.LDMPipeline(
        vqvae=_randomised(vqvae, 0.2), unet=_randomised(unet, 0.1), scheduler=scheduler
    )


@torch.no_grad()
def test_an_unconditional_ldm_pipeline_samples_as_diffusers_does(tmp_path: Path) -> None:
    scheduler = diffusers.DDIMScheduler(
        beta_schedule="scaled_linear", beta_start=0.0015, beta_end=0.0195, clip_sample=False
    )
    pipe = _unconditional_pipeline(scheduler)
    folder = tmp_path / "tiny-ldm-uncond"
    pipe.save_pretrained(folder)
    model = ldmkit.load(folder)
    assert not model.conditioners and not model.config.unet.use_spatial_transformer
    options = SamplingOptions("ddim", 10, spacing="leading", seed=9)
    ours = model.sample(1, options=options)
    theirs = pipe(
        batch_size=1, generator=torch.Generator().manual_seed(9), num_inference_steps=10,
        eta=0.0, output_type="np",
    ).images  # fmt: skip
    theirs = torch.from_numpy(theirs).permute(0, 3, 1, 2)
    assert (ours * 0.5 + 0.5).clamp(0, 1).sub(theirs).abs().max() < 1e-3

    # And back: the plain-attention UNet written as a UNet2DModel, the whole as an LDMPipeline.
    from ldmkit.interop.export_diffusers import export_diffusers

    again = diffusers.DiffusionPipeline.from_pretrained(
        export_diffusers(model, tmp_path / "again"), local_files_only=True
    )
    assert type(again).__name__ == "LDMPipeline"
    x, t = torch.randn(1, 3, 8, 8), torch.tensor([400])
    torch.testing.assert_close(again.unet(x, t).sample, pipe.unet(x, t).sample)


@torch.no_grad()
def test_a_plain_linear_schedule_reads_samples_and_writes_back(tmp_path: Path) -> None:
    # diffusers' "linear" beta schedule is linear in beta (DDPM's), not LDM's sqrt-linear one.
    scheduler = diffusers.DDIMScheduler(
        beta_schedule="linear", beta_start=0.0001, beta_end=0.02, clip_sample=False
    )
    pipe = _unconditional_pipeline(scheduler)
    folder = tmp_path / "tiny-ldm-linear"
    pipe.save_pretrained(folder)
    model = ldmkit.load(folder)
    schedule = model.config.schedule
    assert (schedule.kind, schedule.beta_start, schedule.beta_end) == ("beta_linear", 0.0001, 0.02)
    torch.testing.assert_close(
        model.schedule.alpha_bar.float(), pipe.scheduler.alphas_cumprod, rtol=1e-5, atol=1e-7
    )
    options = SamplingOptions("ddim", 10, spacing="leading", seed=9)
    ours = model.sample(1, options=options)
    theirs = pipe(
        batch_size=1, generator=torch.Generator().manual_seed(9), num_inference_steps=10,
        eta=0.0, output_type="np",
    ).images  # fmt: skip
    theirs = torch.from_numpy(theirs).permute(0, 3, 1, 2)
    assert (ours * 0.5 + 0.5).clamp(0, 1).sub(theirs).abs().max() < 1e-3

    from ldmkit.interop.export_diffusers import export_diffusers

    out = export_diffusers(model, tmp_path / "again")
    written = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    assert written["beta_schedule"] == "linear"
    again = diffusers.DiffusionPipeline.from_pretrained(out, local_files_only=True)
    torch.testing.assert_close(again.scheduler.alphas_cumprod, pipe.scheduler.alphas_cumprod)
    assert ldmkit.load(out).config.schedule == schedule
    # A scheduler config without beta_schedule or its ends is diffusers' default: linear,
    # 0.0001..0.02.
    bare = {
        k: v for k, v in written.items() if k not in ("beta_schedule", "beta_start", "beta_end")
    }
    (out / "scheduler" / "scheduler_config.json").write_text(json.dumps(bare))
    assert ldmkit.load(out).config.schedule == schedule
