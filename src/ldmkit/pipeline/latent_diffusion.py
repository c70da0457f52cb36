"""LatentDiffusion: the one place that knows first stage, denoiser, schedule and sampler.

Training objective (Rombach et al. 2022, Eq. 2): L = E_{E(x), y, eps, t} || eps - eps_theta(z_t, t,
y) ||^2 with z_0 = (E(x) - shift) * scale, the statistics measured from data (Appendix G).
"""

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from ldmkit.autoencoder import Autoencoder
from ldmkit.conditioning import (
    ClipTextEncoder,
    Layout,
    LayoutEncoder,
    TextEncoder,
    TextTokenizer,
    coordinate_grid,
    layout_tokens,
)
from ldmkit.diffusion import (
    build_schedule,
    diffusion_loss,
    offset_noise,
    q_sample,
    sample_timesteps,
)
from ldmkit.nn import tiled_apply
from ldmkit.pipeline.compiled_denoiser import CompiledDenoiser
from ldmkit.pipeline.config import DiffusionConfig
from ldmkit.pipeline.spatial import SpatialConditions
from ldmkit.precision import autocast_call, resolve_precision
from ldmkit.samplers import classifier_free_guidance, randn_per_sample, sample, tiled
from ldmkit.samplers.timesteps import timestep_pairs
from ldmkit.unet import UNet


class LatentDiffusion(SpatialConditions, nn.Module):
    """Frozen autoencoder + trainable UNet (+ text or layout encoder, or frozen CLIP) + noise
    schedule."""

    def __init__(
        self,
        config: DiffusionConfig,
        autoencoder: Autoencoder,
        tokenizer: TextTokenizer | None = None,
        clip: ClipTextEncoder | None = None,
    ):
        """`clip` reuses an already loaded frozen CLIP (else `config.clip` is loaded)."""
        super().__init__()
        z = autoencoder.config.z_channels
        extra = config.spatial.channels(z) if config.spatial is not None else 0
        extra += 2 if config.coordinate_channels else 0
        if config.unet.in_channels != z + extra or config.unet.out_channels != z:
            what = f" + {extra} of the {config.spatial.kind} condition" if config.spatial else ""
            what += " + 2 coordinate channels" if config.coordinate_channels else ""
            raise ValueError(
                f"unet.in_channels={config.unet.in_channels}, unet.out_channels="
                f"{config.unet.out_channels}, but the autoencoder's latent has {z} channels; set "
                f"unet.in_channels={z + extra} ({z}{what}) and unet.out_channels={z}"
            )
        self.config = config
        self.autoencoder = autoencoder.eval().requires_grad_(False)
        self.unet = UNet(config.unet)
        self._compiled_unet: CompiledDenoiser | None = None  # built by sample(compile=True)
        self.schedule = build_schedule(config.schedule)
        self.tokenizer = tokenizer
        # tau_theta trained with the UNet (text or layout tokens -> context), or a frozen CLIP.
        self.context_encoder: TextEncoder | None = None
        self.clip: ClipTextEncoder | None = None
        if config.layout is not None:
            self.context_encoder = LayoutEncoder(config.layout)
        if config.clip is not None:
            self.clip = clip if clip is not None else ClipTextEncoder(config.clip)
            if self.clip.width != config.unet.context_dim:
                raise ValueError(
                    f"the CLIP text encoder at {config.clip.path} has width {self.clip.width}; "
                    f"set unet.context_dim={self.clip.width} (it is {config.unet.context_dim})"
                )
        if config.text is not None:
            if tokenizer is None:
                raise ValueError("a text-conditional model needs its tokenizer (tokenizer=)")
            if tokenizer.vocab_size > config.text.vocab_size:
                raise ValueError(
                    f"the tokenizer has {tokenizer.vocab_size} tokens, more than "
                    f"text.vocab_size={config.text.vocab_size}; raise text.vocab_size"
                )
            if tokenizer.max_length != config.text.max_length:
                raise ValueError(
                    f"tokenizer max_length {tokenizer.max_length} != text.max_length "
                    f"{config.text.max_length}"
                )
            self.context_encoder = TextEncoder(config.text)

    @property
    def device(self) -> torch.device:
        """Where the denoiser's weights are."""
        return next(self.unet.parameters()).device

    @property
    def takes_prompts(self) -> bool:
        """Text-conditional (a trained text encoder or a frozen CLIP)."""
        return self.config.text is not None or self.config.clip is not None

    @property
    def takes_layouts(self) -> bool:
        """Layout-conditional (boxes with classes)."""
        return self.config.layout is not None

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What training updates: the UNet's parameters, and the context encoder's if any."""
        encoder = self.context_encoder
        extra = list(encoder.parameters()) if encoder is not None else []
        return [*self.unet.parameters(), *extra]

    def context(
        self, prompts: Sequence[str] | None = None, layouts: Sequence[Layout] | None = None
    ) -> torch.Tensor:
        """Cross-attention context (B, tokens, width) of `prompts` ("" is the null prompt) or,
        for layout models, of `layouts` ([] is the null layout)."""
        if self.takes_layouts:
            if layouts is None or self.context_encoder is None:
                raise ValueError("this model is layout-conditional: pass layouts")
            ids = layout_tokens(layouts, self.config.layout)  # type: ignore[arg-type]
        elif self.takes_prompts:
            if prompts is None:
                raise ValueError("this model is text-conditional: pass prompts")
            if self.clip is not None:
                return self.clip(prompts)
            ids = self.tokenizer(prompts)  # type: ignore[misc]
        else:
            raise ValueError("this model takes neither prompts nor layouts")
        encoder = self.context_encoder
        assert encoder is not None  # built in __init__ for text and layout models
        return encoder(ids.to(encoder.position_embedding.device))

    def train(self, mode: bool = True) -> "LatentDiffusion":
        """Train the UNet; the first stage always stays in eval mode."""
        super().train(mode)
        self.autoencoder.eval()
        return self

    @property
    def null_class(self) -> int:
        """Index of the learned unconditional class."""
        return self.config.num_classes

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (B, 3, H, W) -> normalised latents (B, c, H/f, W/f)."""
        return self.autoencoder.to_latent(images)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, tile: int | None = None) -> torch.Tensor:
        """Normalised latents -> images in [-1, 1]; with `tile`, decoded in overlapping tiles of
        that latent side (a quarter overlap, blended), so memory stays bounded for any size."""
        if tile is None:
            return self.autoencoder.from_latent(latents).clamp(-1, 1)
        f = self.autoencoder.factor
        return tiled_apply(
            lambda rows, cols: self.autoencoder.from_latent(latents[..., rows, cols]),
            *latents.shape[-2:],
            tile=tile,
            overlap=tile // 4,
            scale=f,
        ).clamp(-1, 1)

    def loss(
        self,
        batch: dict[str, Any],
        generators: Sequence[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        denoiser: nn.Module | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean diffusion loss on a batch ({"image", "label"}).

        Sample i draws its timestep, noise and label dropout from `generators[i]`, so the loss
        does not depend on how a batch is split across processes or accumulation steps.
        `latents` skips encoding (a latent cache); `denoiser` replaces `self.unet` in the call
        (e.g. its DistributedDataParallel wrapper).
        """
        z0 = self.encode(batch["image"]) if latents is None else latents
        b, device = z0.shape[0], z0.device
        if generators is None:
            generators = [torch.Generator().manual_seed(int(s)) for s in torch.randint(2**62, (b,))]
        if len(generators) != b:
            raise ValueError(f"need one generator per sample: {len(generators)} for {b}")
        cfg = self.config.loss
        # Drawn where each generator lives (the CPU), then moved in one copy per tensor.
        t = torch.cat([sample_timesteps(1, self.schedule, g, g.device) for g in generators])
        eps = torch.cat(
            [
                offset_noise((1, *z0.shape[1:]), cfg.offset_noise, g, g.device, z0.dtype)
                for g in generators
            ]
        )
        t, eps = t.to(device), eps.to(device)
        z_t = q_sample(self.schedule, z0, t, eps)
        y = context = None
        if self.config.num_classes:
            labels = torch.as_tensor(batch["label"], device=device)
            y = self.training_labels(labels, generators)
        if self.takes_prompts:
            context = self.context(self.training_captions(batch["caption"], generators))
        elif self.takes_layouts:
            if "layout" not in batch:
                raise ValueError(
                    "layout conditioning needs data with layouts (shapes items carry them)"
                )
            context = self.context(layouts=self.training_layouts(batch["layout"], generators))
        if self.config.spatial is not None:
            z_t = torch.cat([z_t, self.training_condition(batch, generators).to(z_t.dtype)], 1)
        if self.config.coordinate_channels:
            z_t = torch.cat([z_t, coordinate_grid(z_t)], 1)
        output = (denoiser or self.unet)(z_t, t, y=y, context=context)
        per_sample = diffusion_loss(
            output.float(), z0, eps, t, self.schedule, cfg.prediction, cfg.min_snr_gamma
        )
        loss = per_sample.mean()
        return loss, {"loss": loss.item()}

    def training_labels(
        self, labels: torch.Tensor, generators: Sequence[torch.Generator] | None = None
    ) -> torch.Tensor:
        """Check the labels and replace a `label_dropout` fraction by the null class."""
        if (labels < 0).any() or (labels >= self.config.num_classes).any():
            raise ValueError(
                f"labels must lie in 0..{self.config.num_classes - 1} for this model; the data "
                "has none or others (use data.single_object=true for shapes classes)"
            )
        if generators is None:
            u = torch.rand(labels.shape)
        else:
            u = torch.cat([torch.rand(1, generator=g) for g in generators])
        drop = u < self.config.label_dropout
        return torch.where(drop.to(labels.device), torch.full_like(labels, self.null_class), labels)

    def training_captions(
        self, captions: Sequence[str], generators: Sequence[torch.Generator]
    ) -> list[str]:
        """Replace a `caption_dropout` fraction of the captions by the empty prompt."""
        u = [float(torch.rand(1, generator=g)) for g in generators]
        return [
            "" if draw < self.config.caption_dropout else c
            for draw, c in zip(u, captions, strict=True)
        ]

    def training_layouts(
        self, layouts: Sequence[Layout], generators: Sequence[torch.Generator]
    ) -> list[Layout]:
        """Replace a `layout_dropout` fraction of the layouts by the empty layout."""
        u = [float(torch.rand(1, generator=g)) for g in generators]
        return [
            [] if draw < self.config.layout_dropout else list(layout)
            for draw, layout in zip(u, layouts, strict=True)
        ]

    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        guidance: float = 1.0,
        sampler: str = "ddim",
        steps: int = 50,
        seed: int = 0,
        latent_size: int | None = None,
        show_progress: bool = False,
        prompts: Sequence[str] | None = None,
        condition: torch.Tensor | None = None,
        tile: int | None = None,
        init_images: torch.Tensor | None = None,
        strength: float = 0.75,
        layouts: Sequence[Layout] | None = None,
        compile: bool = False,
        precision: str = "fp32",
        **options: Any,
    ) -> torch.Tensor:
        """Generate `n` images in [-1, 1]; sample i draws its noise from seed + i.

        Class-conditional models take `labels` (n,), text-conditional ones `prompts` (n
        strings), layout ones `layouts` (n lists of (class, box)), spatial ones `condition` (n,
        k, h, w) from `spatial_condition` (it sets the latent size); guidance contrasts them with
        the null class / the empty prompt / the empty layout / (for spatial-only models) a zero
        condition. `tile` denoises and decodes latents larger than
        `tile` in blended overlapping tiles of that side (bounded memory; any size).
        Image-to-image (SDEdit): `init_images` (n, 3, H, W) in [-1, 1] are encoded, noised to
        the timestep `strength` of the way up the sampler's steps, and denoised from there
        (ddim or ddpm); strength 1 starts from (almost) pure noise, small keeps the image.
        `compile` runs the UNet through `CompiledDenoiser` (frozen, channels-last
        `torch.compile`): the first call at a shape pays the compile time, the steps run faster.
        `precision` "bf16" / "fp16" runs the UNet under autocast (the sampler's arithmetic and
        the decoder stay in float32); "auto" picks bf16 where the device runs it natively
        (`ldmkit.precision.resolve_precision`), and an emulated half precision warns.
        """
        device = self.device
        precision = resolve_precision(precision, device)
        cond, uncond = self.conditions(n, labels, prompts, condition, guidance, layouts)
        z_init = None
        if init_images is not None:
            z_init = self.encode(init_images.to(device))
            if latent_size is None:
                latent_size = z_init.shape[-1]
        if condition is not None:
            size = tuple(condition.shape[-2:])
            if latent_size is not None and (latent_size, latent_size) != size:
                raise ValueError(f"latent_size={latent_size} but the condition is {size}")
        else:
            side = latent_size or self.config.latent_size
            size = (side, side)
        shape = (n, self.config.unet.out_channels, *size)
        generators = [torch.Generator(device="cpu").manual_seed(seed + i) for i in range(n)]
        if z_init is not None:
            if tuple(z_init.shape) != shape:
                raise ValueError(
                    f"init_images encode to {tuple(z_init.shape)}; this sample needs {shape}"
                )
            options.update(self.noised_start(z_init, strength, sampler, steps, generators, options))
        self.unet.eval()
        model_fn = self.conditional_unet
        if compile:
            if self._compiled_unet is None or self._compiled_unet.module is not self.unet:
                self._compiled_unet = CompiledDenoiser(self.unet)
            model_fn = partial(self.conditional_unet, unet=self._compiled_unet)
        model_fn = autocast_call(model_fn, device, precision)
        model_fn = model_fn if tile is None else tiled(model_fn, tile)
        if cond:
            denoise = classifier_free_guidance(model_fn, cond, uncond, guidance)
        else:
            denoise = lambda x, t: model_fn(x, t, {})  # noqa: E731
        z0 = sample(
            sampler,
            denoise,
            shape,
            self.schedule,
            steps,
            prediction=self.config.loss.prediction,
            generators=generators,
            device=device,
            show_progress=show_progress,
            **options,
        )
        return self.decode(z0, tile)

    def noised_start(
        self,
        z0: torch.Tensor,
        strength: float,
        sampler: str,
        steps: int,
        generators: Sequence[torch.Generator],
        options: dict[str, Any],
    ) -> dict[str, Any]:
        """Sampler options that start from z0 noised `strength` of the way (SDEdit): the number
        of steps to skip and x at the first kept step's timestep."""
        if sampler not in ("ddim", "ddpm"):
            raise ValueError(f"image-to-image needs sampler ddim or ddpm, not {sampler!r}")
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must lie in (0, 1], got {strength}")
        pairs = timestep_pairs(self.schedule, steps, options.get("spacing", "linspace"))
        skip = steps - max(1, round(strength * steps))
        t = torch.full((z0.shape[0],), pairs[skip][0], device=z0.device)
        eps = randn_per_sample(z0.shape, generators, z0.device, z0.dtype)
        return {"initial_noise": q_sample(self.schedule, z0, t, eps), "skip": skip}

    def conditional_unet(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        c: dict[str, torch.Tensor],
        unet: Callable[..., torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The UNet (or `unet`, a stand-in such as its compiled form) on (x_t, t) with
        conditions {"y", "context", "concat"}, any of them absent."""
        if "concat" in c:
            x = torch.cat([x, c["concat"].to(x.dtype)], 1)
        if self.config.coordinate_channels:
            x = torch.cat([x, coordinate_grid(x)], 1)
        return (unet or self.unet)(x, t, y=c.get("y"), context=c.get("context"))

    def conditions(
        self,
        n: int,
        labels: torch.Tensor | None,
        prompts: Sequence[str] | None,
        condition: torch.Tensor | None,
        guidance: float,
        layouts: Sequence[Layout] | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(cond, uncond) for `conditional_unet`, checked against what the model was trained on."""
        device = self.device
        cond: dict[str, torch.Tensor] = {}
        uncond: dict[str, torch.Tensor] = {}
        if self.config.num_classes:
            if labels is None or len(labels) != n:
                raise ValueError(f"this model is class-conditional: pass {n} labels")
            cond["y"] = labels.to(device)
            uncond["y"] = torch.full_like(cond["y"], self.null_class)
        if self.takes_prompts:
            if prompts is None or len(prompts) != n:
                raise ValueError(f"this model is text-conditional: pass {n} prompts")
            cond["context"], uncond["context"] = self.context(prompts), self.context([""] * n)
        elif prompts is not None:
            raise ValueError("this model takes no prompts")
        if self.takes_layouts:
            if layouts is None or len(layouts) != n:
                raise ValueError(f"this model is layout-conditional: pass {n} layouts")
            cond["context"] = self.context(layouts=layouts)
            uncond["context"] = self.context(layouts=[[] for _ in range(n)])
        elif layouts is not None:
            raise ValueError("this model takes no layouts")
        if self.config.spatial is not None:
            if condition is None or condition.shape[0] != n:
                raise ValueError(
                    f"this model is conditioned on a {self.config.spatial.kind} input: pass "
                    f"condition= ({n}, ...) from spatial_condition()"
                )
            cond["concat"] = condition.to(device)
            # Hybrid models guide with the class / text and keep the spatial input.
            spatial_only = len(cond) == 1
            if spatial_only and guidance != 1.0 and self.config.spatial_dropout == 0.0:
                raise ValueError(
                    "guidance needs a model trained with spatial_dropout > 0 (its null "
                    "condition); sample with guidance 1"
                )
            uncond["concat"] = torch.zeros_like(cond["concat"]) if spatial_only else cond["concat"]
        elif condition is not None:
            raise ValueError("this model takes no spatial condition")
        return cond, uncond
