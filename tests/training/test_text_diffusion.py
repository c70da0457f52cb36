"""Text-to-image training: tokenizer from the captions, text encoder trained with the UNet,
exact resume, and a checkpoint that samples from prompts."""

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ldmkit.checkpoint import CheckpointError, load_latent_diffusion
from ldmkit.conditioning import TextCondition, TextEncoderConfig
from ldmkit.data.config import DataConfig
from ldmkit.evaluation.adherence import evaluate_adherence
from ldmkit.evaluation.generate import shapes_prompts
from ldmkit.metrics.class_evaluator import ClassEvaluator, EvaluatorConfig
from ldmkit.pipeline import DiffusionConfig
from ldmkit.samplers import SamplingOptions
from ldmkit.training.checkpoints import latest_checkpoint
from ldmkit.training.config import DiffusionRunConfig, DiffusionTrainConfig, OptimConfig
from ldmkit.training.diffusion_trainer import train_diffusion
from ldmkit.unet import unet_preset


def _config(
    autoencoder: Path, steps: int, kind: str = "shapes", tokenizer: str = ""
) -> DiffusionTrainConfig:
    text = TextEncoderConfig(vocab_size=120, width=32, layers=1, heads=2, max_length=24)
    return DiffusionTrainConfig(
        autoencoder=str(autoencoder),
        model=DiffusionConfig(
            unet=unet_preset("tiny"),
            conditioners=(TextCondition(encoder=text, tokenizer=tokenizer),),
            latent_size=16,
        ),
        data=DataConfig(kind=kind, resolution=32, size=24),  # type: ignore[arg-type]
        optim=OptimConfig(lr=1e-3, betas=(0.9, 0.999)),
        run=DiffusionRunConfig(
            steps=steps,
            batch_size=4,
            log_every=1,
            sample_every=0,
            checkpoint_every=2,
            sample_count=2,
            sample_steps=2,
            ema_decay=0.9,
        ),
    )


def test_text_model_trains_saves_and_samples_from_prompts(
    autoencoder: Path, tmp_path: Path
) -> None:
    result = train_diffusion(_config(autoencoder, 2), tmp_path, show_progress=False)
    for name in ("tokenizer.json", "text_encoder.safetensors", "model.safetensors"):
        assert (result.model_dir / name).is_file(), name
    model = load_latent_diffusion(result.model_dir)
    assert model.tokenizer is not None and model.tokenizer.vocab_size <= 120
    options = SamplingOptions(steps=2, guidance=3.0)
    images = model.sample(2, prompts=["a red circle", "a blue star"], options=options)
    assert images.shape == (2, 3, 32, 32) and torch.isfinite(images).all()
    with pytest.raises(ValueError, match="pass 2 prompts"):
        model.sample(2, prompts=["only one"], options=SamplingOptions(steps=1))
    # Adherence of a text model: one-object prompts naming shapes classes, scored by an evaluator.
    evaluator = ClassEvaluator(EvaluatorConfig(num_kinds=5, num_colors=6, resolution=32))
    scores = evaluate_adherence(model, evaluator, 4, SamplingOptions(steps=1, guidance=2.0))
    assert scores["n"] == 4 and 0 <= scores["both"] <= scores["kind"] <= 1
    with pytest.raises(ValueError, match="use the shapes evaluator"):
        evaluate_adherence(model, ClassEvaluator(EvaluatorConfig(10, 1, resolution=32)), 2)
    (result.model_dir / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="tokenizer"):
        load_latent_diffusion(result.model_dir)


def test_text_encoder_learns_and_resume_is_exact(autoencoder: Path, tmp_path: Path) -> None:
    first = train_diffusion(_config(autoencoder, 4), tmp_path / "a", show_progress=False)
    # The second run reuses the first one's tokenizer (the text conditioner's tokenizer=PATH),
    # so it can match.
    pinned = _config(autoencoder, 2, tokenizer=str(first.model_dir / "tokenizer.json"))
    train_diffusion(pinned, tmp_path / "b", show_progress=False)
    resumed = dataclasses.replace(pinned, run=_config(autoencoder, 4).run)
    train_diffusion(resumed, tmp_path / "b", show_progress=False)
    a = load_file(str(latest_checkpoint(tmp_path / "a") / "train_state.safetensors"))
    b = load_file(str(latest_checkpoint(tmp_path / "b") / "train_state.safetensors"))
    assert a.keys() == b.keys() and any(k.startswith("module.context_encoder/") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # The text encoder is trained: its weights move between steps 2 and 4.
    early = load_file(
        str(tmp_path / "a" / "checkpoints" / "step-00000002" / "train_state.safetensors")
    )
    moved = [
        k for k in a if k.startswith("module.context_encoder/") and not torch.equal(a[k], early[k])
    ]
    assert moved


def test_uncaptioned_data_is_a_clear_error(autoencoder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (32, 32), (i * 40, 0, 0)).save(folder / f"{i}.png")
    data = DataConfig(kind="folder", path=str(folder), resolution=32)
    bad = dataclasses.replace(_config(autoencoder, 1), data=data)
    with pytest.raises(ValueError, match="no captions"):
        train_diffusion(bad, tmp_path / "run", show_progress=False)


def test_shapes_prompts_name_each_class_then_the_next_size() -> None:
    prompts, labels = shapes_prompts(31)
    assert prompts[0] == "a small red circle" and prompts[30] == "a medium red circle"
    assert labels[30] == 0 and labels[29] == 29


def _ddp_worker(rank: int, autoencoder: str, tokenizer: str, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    config = _config(Path(autoencoder), 3, tokenizer=tokenizer)
    train_diffusion(config, Path(out), show_progress=False)


@pytest.mark.slow
def test_two_process_ddp_trains_the_text_encoder_like_one(
    autoencoder: Path, tmp_path: Path, run_two_ranks: Callable[..., None]
) -> None:
    single = train_diffusion(_config(autoencoder, 3), tmp_path / "one", show_progress=False)
    tokenizer = str(single.model_dir / "tokenizer.json")
    run_two_ranks(_ddp_worker, str(autoencoder), tokenizer, str(tmp_path / "ddp"))
    for name in ("model.safetensors", "text_encoder.safetensors"):
        a = load_file(str(tmp_path / "ddp" / "model" / name))
        b = load_file(str(single.model_dir / name))
        for key in a:
            assert torch.allclose(a[key], b[key], atol=1e-5), (name, key)
