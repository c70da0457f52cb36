"""CompVis model-zoo checkpoints (`model.ckpt` with the zoo's `config.yaml` beside it): tiny
random models in the zoo's layout (plain self-attention UNets on a VQ first stage; a
ClassEmbedder's table cross-attended) read back to the same weights and sampled from the
command line; what is not read yet is named."""

from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

import ldmkit
from ldmkit.autoencoder import Autoencoder, AutoencoderConfig
from ldmkit.checkpoint import CheckpointError
from ldmkit.cli import app
from ldmkit.diffusion import linear_schedule
from ldmkit.unet import UNet, UNetConfig

UNCONDITIONAL = UNetConfig(
    in_channels=3,
    out_channels=3,
    model_channels=32,
    channel_mult=(1, 2),
    num_res_blocks=1,
    attention_resolutions=(2,),
    num_heads=None,
    num_head_channels=32,
    use_spatial_transformer=False,
)
CLASSES = UNetConfig(
    in_channels=3,
    out_channels=3,
    model_channels=32,
    channel_mult=(1, 2),
    num_res_blocks=1,
    attention_resolutions=(1, 2),
    num_heads=None,
    num_head_channels=32,
    context_dim=16,
)
VQ = AutoencoderConfig(
    kind="vq", model_channels=32, channel_mult=(1, 2), num_res_blocks=1, z_channels=3,
    codebook_size=64,
)  # fmt: skip


def _zoo_yaml(unet: UNetConfig, cond_stage: object, key: str | None) -> dict:
    """A config in the zoo's format (as its config.yaml files are written)."""
    unet_params = {
        "image_size": 8,
        "in_channels": unet.in_channels,
        "out_channels": unet.out_channels,
        "model_channels": unet.model_channels,
        "attention_resolutions": list(unet.attention_resolutions),
        "num_res_blocks": unet.num_res_blocks,
        "channel_mult": list(unet.channel_mult),
        "num_head_channels": unet.num_head_channels,
    }
    if unet.use_spatial_transformer:
        unet_params |= {"use_spatial_transformer": True, "context_dim": unet.context_dim}
    params = {
        "linear_start": 0.0015,
        "linear_end": 0.0195,
        "timesteps": 1000,
        "image_size": 8,
        "channels": 3,
        "unet_config": {"target": "ldm.modules.diffusionmodules.openaimodel.UNetModel",
                        "params": unet_params},
        "first_stage_config": {
            "target": "ldm.models.autoencoder.VQModelInterface",
            "params": {
                "embed_dim": 3,
                "n_embed": VQ.codebook_size,
                "ddconfig": {"double_z": False, "z_channels": 3, "resolution": 256,
                             "in_channels": 3, "out_ch": 3, "ch": 32, "ch_mult": [1, 2],
                             "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0},
                "lossconfig": {"target": "torch.nn.Identity"},
            },
        },
        "cond_stage_config": cond_stage,
    }  # fmt: skip
    if key:
        params["conditioning_key"] = key
    return {"model": {"target": "ldm.models.diffusion.ddpm.LatentDiffusion", "params": params}}


def _write_zoo(folder: Path, unet: UNet, extra: dict, config: dict) -> Path:
    torch.manual_seed(0)
    autoencoder = Autoencoder(VQ)
    state = {f"model.diffusion_model.{k}": v for k, v in unet.state_dict().items()}
    state |= {
        f"first_stage_model.{k}": v
        for k, v in autoencoder.state_dict().items()
        if not k.startswith("latent_") and k != "quantize.usage"
    }
    schedule = linear_schedule(1000, 0.0015, 0.0195)
    state |= {"betas": schedule.betas.float(), "scale_factor": torch.tensor(0.9), **extra}
    folder.mkdir(parents=True)
    path = folder / "model.ckpt"
    torch.save({"state_dict": state, "global_step": 1}, path)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return path


def _random(module: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return module.eval()


def test_an_unconditional_zoo_model_reads_and_samples(tmp_path: Path) -> None:
    unet = _random(UNet(UNCONDITIONAL))
    config = _zoo_yaml(UNCONDITIONAL, "__is_unconditional__", None)
    path = _write_zoo(tmp_path / "celeba256", unet, {}, config)
    model = ldmkit.load(path)  # its config.yaml beside it, as the zoo's zips unpack
    assert model.config.unet == UNCONDITIONAL and model.autoencoder.config.kind == "vq"
    assert float(model.autoencoder.latent_scale) == pytest.approx(0.9)  # the file's buffer
    assert (model.config.schedule.beta_start, model.config.schedule.steps_offset) == (0.0015, 1)
    original = unet.state_dict()
    assert all(torch.equal(v, original[k]) for k, v in model.unet.state_dict().items())
    runs = []
    for name in ("a.png", "b.png"):
        out = tmp_path / name
        arguments = ["sample", "--checkpoint", str(path), "--n", "2", "--steps", "3"]
        result = CliRunner().invoke(app, [*arguments, "--out", str(out)])
        assert result.exit_code == 0, result.output
        runs.append(Image.open(out).tobytes())
    assert runs[0] == runs[1]
    (tmp_path / "celeba256" / "config.yaml").unlink()
    with pytest.raises(CheckpointError, match=r"pass --config CONFIG\.yaml"):
        ldmkit.load(path)
    with pytest.raises(CheckpointError, match=r"nowhere\.yaml is not readable YAML"):
        ldmkit.load(path, original_config=tmp_path / "nowhere.yaml")


def test_a_class_embedder_zoo_model_cross_attends_its_table(tmp_path: Path) -> None:
    unet = _random(UNet(CLASSES))
    table = torch.randn(1001, 16)  # ImageNet's 1000 classes and the null class 1000
    config = _zoo_yaml(
        CLASSES,
        {"target": "ldm.modules.encoders.modules.ClassEmbedder",
         "params": {"embed_dim": 16, "n_classes": 1001, "key": "class_label"}},
        "crossattn",
    )  # fmt: skip
    path = _write_zoo(
        tmp_path / "cin256", unet, {"cond_stage_model.embedding.weight": table}, config
    )
    model = ldmkit.load(path)
    assert model.num_classes == 1000
    cond, uncond = model.conditions(2, {"labels": torch.tensor([3, 999])}, 3.0)
    torch.testing.assert_close(cond["context"], table[[3, 999]][:, None])
    torch.testing.assert_close(uncond["context"], table[[1000, 1000]][:, None])
    # Saved as an ldmkit checkpoint (the table in its own file) and read back the same.
    from ldmkit.checkpoint import save_latent_diffusion

    saved = save_latent_diffusion(model, tmp_path / "as-ldmkit")
    assert (saved / "class_embedding.safetensors").is_file()
    again, _ = ldmkit.load(saved).conditions(2, {"labels": torch.tensor([3, 999])}, 3.0)
    torch.testing.assert_close(again["context"], cond["context"])
    out = tmp_path / "cats.png"
    arguments = ["sample", "--checkpoint", str(path), "--class", "281", "--n", "1"]
    result = CliRunner().invoke(app, [*arguments, "--steps", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output


def test_zoo_families_not_read_yet_are_named(tmp_path: Path) -> None:
    unet = _random(UNet(CLASSES))
    config = _zoo_yaml(
        CLASSES, {"target": "ldm.modules.encoders.modules.LayoutEmbedder"}, "crossattn"
    )
    path = _write_zoo(tmp_path / "layout", unet, {}, config)
    with pytest.raises(CheckpointError, match=r"LayoutEmbedder.*not read yet"):
        ldmkit.load(path)


@torch.no_grad()
def test_a_semantic_zoo_model_rescales_and_maps_its_one_hot_map(tmp_path: Path) -> None:
    from dataclasses import replace

    semantic_unet = replace(UNCONDITIONAL, in_channels=6)
    rescaler = {"target": "ldm.modules.encoders.modules.SpatialRescaler",
                "params": {"n_stages": 1, "in_channels": 5, "out_channels": 3}}  # fmt: skip
    config = _zoo_yaml(semantic_unet, rescaler, None)  # no conditioning_key: concat_mode
    mapper = torch.randn(3, 5, 1, 1)
    extra = {"cond_stage_model.channel_mapper.weight": mapper}
    path = _write_zoo(tmp_path / "semantic", _random(UNet(semantic_unet)), extra, config)
    model = ldmkit.load(path)
    assert model.spatial is not None and model.spatial.rescaler_channels == 3
    ids = torch.randint(0, 5, (1, 16, 16))
    one_hot = torch.nn.functional.one_hot(ids, 5).permute(0, 3, 1, 2).float()
    halved = torch.nn.functional.interpolate(one_hot, scale_factor=0.5, mode="bilinear")
    expected = torch.nn.functional.conv2d(halved, mapper)
    torch.testing.assert_close(model.spatial_condition(semantic=ids), expected)
    assert model.sample(1, condition=model.spatial_condition(semantic=ids)).shape == (1, 3, 16, 16)
    from ldmkit.checkpoint import save_latent_diffusion  # the learned map in its own file

    saved = save_latent_diffusion(model, tmp_path / "as-ldmkit")
    assert (saved / "spatial_mapper.safetensors").is_file()
    torch.testing.assert_close(ldmkit.load(saved).spatial_condition(semantic=ids), expected)


@torch.no_grad()
def test_the_zoos_concat_families_read_as_spatial_models(tmp_path: Path) -> None:
    from dataclasses import replace

    # Inpainting: [the first stage's encoding of image * (1 - hole), the hole by nearest].
    inpaint_unet = replace(UNCONDITIONAL, in_channels=7)
    config = _zoo_yaml(inpaint_unet, "__is_first_stage__", "concat")
    path = _write_zoo(tmp_path / "inpainting_big", _random(UNet(inpaint_unet)), {}, config)
    model = ldmkit.load(path)
    assert model.spatial is not None and model.spatial.layout == "compvis"
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 2:9, 5:14] = 0.7  # soft: CompVis binarises at 0.5
    hole = (mask >= 0.5).float()
    expected = torch.cat(
        [model.encode(image * (1 - hole)), torch.nn.functional.interpolate(hole, size=(8, 8))], 1
    )
    torch.testing.assert_close(model.spatial_condition(image=image, mask=mask), expected)
    # Super-resolution (bsr_sr): the low-resolution image concatenated at the latent's side.
    sr_unet = replace(UNCONDITIONAL, in_channels=6)
    config = _zoo_yaml(sr_unet, {"target": "torch.nn.Identity"}, "concat")
    path = _write_zoo(tmp_path / "bsr_sr", _random(UNet(sr_unet)), {}, config)
    model = ldmkit.load(path)
    assert model.spatial is not None and model.spatial.kind == "super_resolution"
    low = torch.rand(1, 3, 8, 8) * 2 - 1
    torch.testing.assert_close(model.spatial_condition(low_res=low), low)
    assert model.sample(1, condition=model.spatial_condition(low_res=low)).shape == (1, 3, 16, 16)


def _x_transformers_names(encoder: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A BertEncoder's weights as a CompVis BERTEmbedder stores them (x-transformers' names:
    layers alternate [norm, attention] and [norm, feed-forward])."""
    out = {}
    for key, value in encoder.state_dict().items():
        parts = key.split(".")
        if parts[0] in ("embed_tokens", "embed_positions", "layer_norm"):
            new = {"embed_tokens": "token_emb", "embed_positions": "pos_emb.emb",
                   "layer_norm": "norm"}[parts[0]]  # fmt: skip
            out[f"cond_stage_model.transformer.{new}.{parts[-1]}"] = value
            continue
        i, name, kind = int(parts[1]), ".".join(parts[2:-1]), parts[-1]
        slot = {
            "self_attn_layer_norm": (2 * i, "0"),
            "self_attn.q_proj": (2 * i, "1.to_q"),
            "self_attn.k_proj": (2 * i, "1.to_k"),
            "self_attn.v_proj": (2 * i, "1.to_v"),
            "self_attn.out_proj": (2 * i, "1.to_out"),
            "final_layer_norm": (2 * i + 1, "0"),
            "fc1": (2 * i + 1, "1.net.0.0"),
            "fc2": (2 * i + 1, "1.net.2"),
        }[name]
        out[f"cond_stage_model.transformer.attn_layers.layers.{slot[0]}.{slot[1]}.{kind}"] = value
    width = encoder.config.width
    out["cond_stage_model.transformer.to_logits.weight"] = torch.zeros(
        encoder.config.vocab_size, width
    )
    return out


def test_a_bert_text_zoo_model_reads_its_encoder(tmp_path: Path) -> None:
    from ldmkit.conditioning import BertEncoder, BertEncoderConfig

    pytest.importorskip("transformers", reason="BERT's tokenizer is transformers'")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "cat", "photo", "of"]
    unet = _random(UNet(CLASSES))
    torch.manual_seed(6)
    encoder = BertEncoder(
        BertEncoderConfig(vocab_size=len(words), width=16, layers=2, mlp_width=64, max_length=77)
    ).eval()
    for p in encoder.parameters():
        p.data.normal_(0, 0.1)
    config = _zoo_yaml(
        CLASSES,
        {"target": "ldm.modules.encoders.modules.BERTEmbedder",
         "params": {"n_embed": 16, "n_layer": 2, "vocab_size": len(words)}},
        "crossattn",
    )  # fmt: skip
    path = _write_zoo(tmp_path / "txt2img-f8-large", unet, _x_transformers_names(encoder), config)
    with pytest.raises(CheckpointError, match=r"bert-base-uncased's vocab\.txt"):
        ldmkit.load(path)  # the vocabulary is not shipped: the message says where it goes
    (path.parent / "vocab.txt").write_text("\n".join(words) + "\n")
    model = ldmkit.load(path)
    cond, _uncond = model.conditions(1, {"prompts": ["a photo of a cat"]}, 3.0)
    ids = torch.tensor([[2, 5, 7, 8, 5, 6, 3] + [0] * 70])
    with torch.no_grad():
        torch.testing.assert_close(cond["context"], encoder(ids))
    from ldmkit.checkpoint import save_latent_diffusion  # the weights and the vocabulary kept

    saved = save_latent_diffusion(model, tmp_path / "as-ldmkit")
    (path.parent / "vocab.txt").unlink()  # the checkpoint folder stands alone
    again, _ = ldmkit.load(saved).conditions(1, {"prompts": ["a photo of a cat"]}, 3.0)
    torch.testing.assert_close(again["context"], cond["context"])
    (path.parent / "vocab.txt").write_text("\n".join(words) + "\n")
    out = tmp_path / "cat.png"
    arguments = ["sample", "--checkpoint", str(path), "--prompt", "a photo of a cat", "--n", "1"]
    result = CliRunner().invoke(app, [*arguments, "--steps", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output


@torch.no_grad()
def test_the_layout_zoo_model_reads_boxes_as_its_tokens(tmp_path: Path) -> None:
    from ldmkit.conditioning import BertEncoder, BertEncoderConfig, bbox_token_ids

    # 101 ids: corners on a 10 x 10 grid (ids 0..99), 100 the empty slot; 3 objects and the
    # crop = 11 positions (the released model: 8192 ids, a 90 x 90 grid, 30 objects, 92).
    encoder = BertEncoder(
        BertEncoderConfig(vocab_size=101, width=16, layers=2, mlp_width=64, max_length=11)
    ).eval()
    for p in encoder.parameters():
        p.data.normal_(0, 0.1)
    config = _zoo_yaml(
        CLASSES,
        {"target": "ldm.modules.encoders.modules.BERTEmbedder",
         "params": {"n_embed": 16, "n_layer": 2, "vocab_size": 101, "max_seq_len": 11,
                    "use_tokenizer": False}},
        "crossattn",
    )  # fmt: skip
    config["model"]["params"]["cond_stage_key"] = "coordinates_bbox"
    path = _write_zoo(
        tmp_path / "layout2img", _random(UNet(CLASSES)), _x_transformers_names(encoder), config
    )
    model = ldmkit.load(path)
    layout = [(7, (0.1, 0.2, 0.55, 0.9))]
    # (class, top-left, bottom-right): corners round to the grid, id = row * 10 + column.
    expected = [7, 2 * 10 + 1, 8 * 10 + 5, *[100] * 6, 0, 99]
    assert bbox_token_ids([layout], model.layout).tolist() == [expected]
    cond, _ = model.conditions(1, {"layouts": [layout]}, 1.0)
    torch.testing.assert_close(cond["context"], encoder(torch.tensor([expected])))
    with pytest.raises(ValueError, match="guidance 1"):
        model.conditions(1, {"layouts": [layout]}, 3.0)  # trained without an empty layout
    # From the command line, classes by number, or by name with a labels.txt beside the file.
    boxes = tmp_path / "boxes.json"
    boxes.write_text('[{"class": "boat", "box": [0.1, 0.2, 0.55, 0.9]}]')
    arguments = ["sample", "--checkpoint", str(path), "--layout", str(boxes), "--n", "1"]
    arguments += ["--steps", "2", "--out", str(tmp_path / "boat.png")]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2 and "labels.txt" in result.output
    (path.parent / "labels.txt").write_text("\n".join(f"class{i}" for i in range(7)) + "\nBoat\n")
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    named = ldmkit.load(path)
    assert named.layout is not None and named.layout.classes == 8
    from ldmkit.checkpoint import save_latent_diffusion  # the encoder and the names kept

    again = ldmkit.load(save_latent_diffusion(named, tmp_path / "as-ldmkit"))
    assert again.layout == named.layout
    torch.testing.assert_close(again.conditions(1, {"layouts": [layout]}, 1.0)[0]["context"],
                               cond["context"])  # fmt: skip


def test_a_zoo_models_schedule_is_its_stored_betas_else_its_yamls(tmp_path: Path) -> None:
    unet = _random(UNet(UNCONDITIONAL))
    config = _zoo_yaml(UNCONDITIONAL, "__is_unconditional__", None)
    config["model"]["params"]["beta_schedule"] = "sqrt_linear"  # the YAML says plain linear
    path = _write_zoo(tmp_path / "zoo", unet, {}, config)
    stored = ldmkit.load(path).config.schedule  # but the file stores LDM's sqrt-linear betas
    assert (stored.kind, stored.beta_start, stored.beta_end) == ("linear", 0.0015, 0.0195)
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["state_dict"]["betas"]
    torch.save(checkpoint, path)
    from_yaml = ldmkit.load(path).config.schedule
    assert (from_yaml.kind, from_yaml.beta_start, from_yaml.steps_offset) == (
        "beta_linear",
        0.0015,
        1,
    )
    config["model"]["params"]["beta_schedule"] = "sqrt"
    (path.parent / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(CheckpointError, match=r"beta_schedule 'sqrt'"):
        ldmkit.load(path)
