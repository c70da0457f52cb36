"""LatentDiffusion: the one place that knows first stage, denoiser, schedule and sampler.

Training objective (Rombach et al. 2022, Eq. 2): L = E_{E(x), y, eps, t} || eps - eps_theta(z_t, t,
y) ||^2 with z_0 = (E(x) - shift) * scale, the statistics measured from data (Appendix G).
"""

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar, cast

import torch
from torch import nn

from ldmkit.autoencoder import Autoencoder
from ldmkit.conditioning import (
    BBoxTokensCondition,
    BBoxTokensConditioner,
    ClassConditioner,
    ClipTextEncoder,
    Conditioner,
    Conditioning,
    Layout,
    LayoutConditioner,
    LayoutConfig,
    SpatialConditioner,
    SpatialConfig,
    TextTokenizer,
    coordinate_grid,
)
from ldmkit.diffusion import (
    build_schedule,
    diffusion_loss,
    offset_noise,
    q_sample,
    sample_timesteps,
)
from ldmkit.pipeline.compiled_denoiser import CompiledDenoiser
from ldmkit.pipeline.conditioners import build_conditioners
from ldmkit.pipeline.conditions import default_guidance, guided_pair, latent_side
from ldmkit.pipeline.config import DiffusionConfig
from ldmkit.pipeline.image_to_image import noised_start
from ldmkit.precision import (
    DTYPES,
    autocast,
    autocast_call,
    check_precision,
    resolve_precision,
)
from ldmkit.samplers import (
    SamplingOptions,
    StepCallback,
    classifier_free_guidance,
    sample,
    tiled,
)
from ldmkit.samplers.registry import END_AT_ALPHA
from ldmkit.unet import UNet

C = TypeVar("C", bound=Conditioner)


class LatentDiffusion(nn.Module):
    """Frozen autoencoder + trainable UNet + its conditioners (`ldmkit.conditioning`: classes,
    a trained text or layout encoder, a frozen CLIP, a concatenated map) + noise schedule."""

    def __init__(
        self,
        config: DiffusionConfig,
        autoencoder: Autoencoder,
        loaded: Mapping[str, Any] | None = None,
        conditioners: Sequence[Conditioner] | None = None,
        unet: UNet | None = None,
    ):
        """`loaded` holds what conditioners take by kind: a text model's tokenizer under "text",
        an already loaded frozen CLIP under "clip" (else it loads its own). `conditioners`
        replaces those `config` lists (`build_conditioners`), e.g. a mode of one's own; the
        UNet's inputs must then fit them. `unet` is one built elsewhere for `config.unet` (a
        checkpoint's, its weights already in place)."""
        super().__init__()
        # The UNet first, then the conditioners: the order in which their initial weights draw
        # from the global generator, so a seed gives the weights it always gave.
        if unet is None:
            unet = UNet(config.unet)
        elif unet.config != config.unet:
            raise ValueError("the given unet was built for another UNetConfig than config.unet")
        if conditioners is None:
            conditioners = build_conditioners(config, autoencoder, loaded)
        z = autoencoder.config.z_channels
        extra = sum(c.concat_channels(z) for c in conditioners)
        extra += 2 if config.coordinate_channels else 0
        if config.unet.in_channels != z + extra or config.unet.out_channels != z:
            what = "".join(
                f" + {c.concat_channels(z)} of the {c.name} condition"
                for c in conditioners
                if c.concat_channels(z)
            )
            what += " + 2 coordinate channels" if config.coordinate_channels else ""
            raise ValueError(
                f"unet.in_channels={config.unet.in_channels}, unet.out_channels="
                f"{config.unet.out_channels}, but the autoencoder's latent has {z} channels; set "
                f"unet.in_channels={z + extra} ({z}{what}) and unet.out_channels={z}"
            )
        names = [c.input_name for c in conditioners]
        if len(set(names)) != len(names):
            raise ValueError(f"two conditioners read the same input: {names}")
        self.config = config
        self.autoencoder = autoencoder.eval().requires_grad_(False)
        self.unet = unet
        self._compiled_unet: CompiledDenoiser | None = None  # built by sample(compile=True)
        self.schedule = build_schedule(config.schedule)
        self.condition_modules = nn.ModuleList(conditioners)  # registered: moved with .to()

    @property
    def conditioners(self) -> tuple[Conditioner, ...]:
        """How conditions reach the denoiser, in the order training draws for them."""
        return tuple(cast(Conditioner, module) for module in self.condition_modules)

    @property
    def device(self) -> torch.device:
        """Where the denoiser's weights are."""
        return next(self.unet.parameters()).device

    def conditioner(self, input_name: str) -> Conditioner | None:
        """The conditioner that reads `input_name` ("labels", "prompts", "layouts",
        "condition"), or None when the model takes no such input."""
        for conditioner in self.conditioners:
            if conditioner.input_name == input_name:
                return conditioner
        return None

    @property
    def inputs(self) -> tuple[str, ...]:
        """The inputs this model takes, by `sample` keyword."""
        return tuple(c.input_name for c in self.conditioners)

    @property
    def takes_prompts(self) -> bool:
        """Text-conditional (a trained text encoder or a frozen CLIP)."""
        return "prompts" in self.inputs

    @property
    def takes_layouts(self) -> bool:
        """Layout-conditional (boxes with classes)."""
        return "layouts" in self.inputs

    @property
    def loaded(self) -> dict[str, Any]:
        """What its conditioners were built with (`loaded=`), to build the same again."""
        found = {c.kind: c.resource() for c in self.conditioners}
        return {kind: value for kind, value in found.items() if value is not None}

    @property
    def tokenizer(self) -> TextTokenizer | None:
        """The trained text encoder's tokenizer, if the model has one."""
        return getattr(self.conditioner("prompts"), "tokenizer", None)

    @property
    def clip(self) -> ClipTextEncoder | None:
        """The frozen CLIP text encoder, if the model uses one."""
        return getattr(self.conditioner("prompts"), "clip", None)

    @property
    def text_encoder(self) -> nn.Module | None:
        """The network that turns prompts into context (the frozen CLIP's transformer, or the
        trained text encoder); None for models without prompts."""
        if self.clip is not None:
            return self.clip.model
        return self.context_encoder if self.takes_prompts else None

    @property
    def context_encoder(self) -> nn.Module | None:
        """The network trained with the UNet besides it (a text or layout tau_theta), if any."""
        for conditioner in self.conditioners:
            module = conditioner.trained_module()
            if module is not None:
                return module
        return None

    @property
    def default_guidance(self) -> float:
        """3, or 1 where guidance has no trained null condition (a spatial-only model trained
        without spatial dropout)."""
        return default_guidance(self.conditioners)

    def resolve(self, options: SamplingOptions) -> SamplingOptions:
        """`options` as this model samples with them: guidance None becomes the model's
        default, precision "auto" (and an emulated half precision, with its warning) the one
        for its device, steps_offset and final (None) the conventions its schedule records
        (`ScheduleConfig.steps_offset`, `set_alpha_to_one` for DDIM and PLMS)."""
        guidance = self.default_guidance if options.guidance is None else options.guidance
        precision = resolve_precision(options.precision, self.device)
        conventions = self.config.schedule
        steps_offset = options.steps_offset
        if steps_offset is None and conventions.steps_offset:
            steps_offset = conventions.steps_offset
        final = options.final
        if final is None and not conventions.set_alpha_to_one and options.sampler in END_AT_ALPHA:
            final = "sigma_min"
        return options.replace(
            guidance=guidance, precision=precision, steps_offset=steps_offset, final=final
        )

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
        for name, values in (("layouts", layouts), ("prompts", prompts)):
            conditioner = self.conditioner(name)
            if conditioner is not None:
                if values is None:
                    raise ValueError(f"this model is {conditioner.description}: pass {name}")
                return conditioner.encode(values, len(values), self.device)["context"]
        raise ValueError("this model takes neither prompts nor layouts")

    def spatial_condition(
        self,
        low_res: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        semantic: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The concatenated map at the latent's side (`SpatialConditioner.condition`; a
        noise-augmented upscaler draws its noise from `generator`)."""
        return self._spatial().condition(low_res, image, mask, semantic, generator)

    @property
    def weight_precision(self) -> str:
        """The precision the UNet's weights are held in: fp32, or bf16 / fp16 after
        `hold_weights_in`."""
        dtype = next(self.unet.parameters()).dtype
        return next((name for name, d in DTYPES.items() if d == dtype), "fp32")

    def hold_weights_in(self, precision: str) -> None:
        """Keep the UNet's weights in `precision` (bf16 / fp16: half the memory, no per-step
        cast; fp32 back, the rounding kept). A model held in half precision samples only at
        that precision (`SamplingOptions.precision`); the first stage and the text encoders
        stay in float32."""
        check_precision(precision)
        self.unet.to(DTYPES[precision])
        self.weights_changed()

    def weights_changed(self) -> None:
        """Say the UNet's weights were changed in place (a merged LoRA): a compiled UNet is
        built again for them."""
        self._compiled_unet = None

    def set_noise_level(self, level: int) -> None:
        """A noise-augmented upscaler's noise level for the images it upscales next."""
        self._spatial().set_noise_level(level)

    def degrade(
        self, batch: dict[str, Any], generators: Sequence[torch.Generator]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(map, picture of the input) of clean data (`SpatialConditioner.degrade`)."""
        return self._spatial().degrade(batch, generators)

    def _spatial(self) -> SpatialConditioner:
        return self._required("condition", SpatialConditioner, "has no spatial condition")

    def _required(self, input_name: str, kind: type[C], missing: str) -> C:
        """The conditioner reading `input_name`, which must be a `kind`, or a ValueError."""
        conditioner = self.conditioner(input_name)
        if not isinstance(conditioner, kind):
            raise ValueError(f"this model {missing}")
        return conditioner

    def train(self, mode: bool = True) -> "LatentDiffusion":
        """Train the UNet; the first stage always stays in eval mode."""
        super().train(mode)
        self.autoencoder.eval()
        return self

    @property
    def num_classes(self) -> int:
        """The classes of a class-conditional model (0 for others)."""
        conditioner = self.conditioner("labels")
        return getattr(conditioner, "num_classes", 0) if conditioner is not None else 0

    @property
    def spatial(self) -> SpatialConfig | None:
        """The concatenated map's config (its kind, factor, classes), if the model takes one."""
        conditioner = self.conditioner("condition")
        return conditioner.config if isinstance(conditioner, SpatialConditioner) else None

    @property
    def layout(self) -> LayoutConfig | BBoxTokensCondition | None:
        """The layout encoding's config (classes, objects; its grid), if the model takes
        layouts: ldmkit's own, or the released OpenImages model's box tokens."""
        conditioner = self.conditioner("layouts")
        if isinstance(conditioner, LayoutConditioner | BBoxTokensConditioner):
            return conditioner.config
        return None

    @property
    def null_class(self) -> int:
        """Index of the learned unconditional class of a class-conditional model."""
        return self._required("labels", ClassConditioner, "is not class-conditional").null_class

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (B, 3, H, W) -> normalised latents (B, c, H/f, W/f)."""
        return self.autoencoder.to_latent(images)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, tile: int | None = None) -> torch.Tensor:
        """Normalised latents -> images in [-1, 1]; with `tile`, decoded in tiles of at most
        that latent side without seams (`autoencoder.tiled_decoder`), so memory stays bounded
        for any size."""
        return self.autoencoder.from_latent(latents, tile).clamp(-1, 1)

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
        c: Conditioning = {}
        for conditioner in self.conditioners:  # in order: each draws from the generators
            c.update(conditioner.training_condition(batch, generators))
        c = {key: value.to(device) for key, value in c.items()}
        output = self.conditional_unet(z_t, t, c, denoiser)
        per_sample = diffusion_loss(
            output.float(), z0, eps, t, self.schedule, cfg.prediction, cfg.min_snr_gamma
        )
        loss = per_sample.mean()
        return loss, {"loss": loss.item()}

    def training_labels(
        self, labels: torch.Tensor, generators: Sequence[torch.Generator] | None = None
    ) -> torch.Tensor:
        """Check the labels and replace a `label_dropout` fraction by the null class."""
        conditioner = self._required("labels", ClassConditioner, "is not class-conditional")
        return conditioner.with_dropout(labels, generators)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        *,
        prompts: Sequence[str] | None = None,
        negative_prompts: Sequence[str] | None = None,
        layouts: Sequence[Layout] | None = None,
        condition: torch.Tensor | None = None,
        inputs: Mapping[str, Any] | None = None,
        options: SamplingOptions | None = None,
        init_images: torch.Tensor | None = None,
        strength: float = 0.75,
        latent_size: int | tuple[int, int] | None = None,
        show_progress: bool = False,
        callback: StepCallback | None = None,
    ) -> torch.Tensor:
        """Generate `n` images in [-1, 1] as `options` say (`SamplingOptions`: sampler, steps,
        guidance, seed, precision, compile, tiles); sample i draws its noise from seed + i.

        Conditions: class-conditional models take `labels` (n,), text-conditional ones
        `prompts` (n strings; `negative_prompts`, n strings, replace the empty prompt that
        guidance contrasts them with), layout ones `layouts` (n lists of (class, box)), spatial ones
        `condition` (n, k, h, w) from `spatial_condition` (it sets the latent size); a
        conditioner of one's own reads its values from `inputs` by its `input_name`. Guidance
        contrasts them with each conditioner's null condition (`options.guidance` None: the
        model's `default_guidance`). Image-to-image (SDEdit): `init_images` (n, 3, H, W) in
        [-1, 1] are encoded, noised to the timestep `strength` of the way up the sampler's
        steps, and denoised from there (any sampler); strength 1 starts from (almost) pure
        noise, small keeps the image; the sample takes the image's size and aspect (each
        side a multiple of the first stage's f). `latent_size` samples latents of another side
        (or (h, w)).
        `callback(step, steps, z)` runs after every step (progress, previews; raise to cancel).

        `options.compile` runs the UNet through `CompiledDenoiser` (frozen, channels-last
        `torch.compile`): the first call at a shape pays the compile time, the steps run faster.
        `options.precision` "bf16" / "fp16" runs the UNet under autocast (the sampler in float32,
        the decoder in bf16 for bf16, in float32 for fp16); "auto" picks bf16 where the device
        runs it natively (`ldmkit.precision.resolve_precision`); emulated half precision warns.
        `options.tile` denoises in blended overlapping latent tiles of that side and decodes in
        seamless tiles (`autoencoder.tiled_decoder`).
        """
        options = self.resolve(options or SamplingOptions())
        device, precision, guidance = self.device, options.precision, options.guidance
        if self.weight_precision != "fp32" and precision != self.weight_precision:
            raise ValueError(
                f"the UNet holds {self.weight_precision} weights (hold_weights_in, or "
                f"--precision {self.weight_precision} on the command line): sample with precision "
                f"{self.weight_precision}, not {precision}"
            )
        assert guidance is not None  # resolve() gives the model's default for None
        given = {"labels": labels, "prompts": prompts, "layouts": layouts, "condition": condition}
        given = {k: v for k, v in {**given, **(inputs or {})}.items() if v is not None}
        negatives = {"prompts": negative_prompts} if negative_prompts is not None else None
        cond, uncond = self.conditions(n, given, guidance, negatives)
        sampler_options = options.sampler_options()
        size = latent_side(self.conditioners, given, latent_size, self.config.latent_size)
        z_init = None
        if init_images is not None:
            z_init = self.encode(init_images.to(device))
            fixed = any(c.latent_size(given.get(c.input_name)) for c in self.conditioners)
            if latent_size is None and not fixed:
                size = (int(z_init.shape[-2]), int(z_init.shape[-1]))  # the image's, any aspect
        shape = (n, self.config.unet.out_channels, *size)
        generators = [torch.Generator(device="cpu").manual_seed(options.seed + i) for i in range(n)]
        if z_init is not None:
            if tuple(z_init.shape) != shape:
                raise ValueError(
                    f"init_images encode to {tuple(z_init.shape)}; this sample needs {shape}"
                )
            sampler_options.update(
                noised_start(self.schedule, z_init, strength, options, generators)
            )
        self.unet.eval()
        model_fn = self.conditional_unet
        if options.compile:
            if self._compiled_unet is None or self._compiled_unet.module is not self.unet:
                self._compiled_unet = CompiledDenoiser(self.unet)
            model_fn = partial(self.conditional_unet, unet=self._compiled_unet)
        model_fn = autocast_call(model_fn, device, precision)
        model_fn = model_fn if options.tile is None else tiled(model_fn, options.tile)
        if cond:
            denoise = classifier_free_guidance(
                model_fn, cond, uncond, guidance, options.guidance_rescale
            )
        else:
            denoise = lambda x, t: model_fn(x, t, {})  # noqa: E731
        z0 = sample(
            options.sampler,
            denoise,
            shape,
            self.schedule,
            options.steps,
            prediction=self.config.loss.prediction,
            generators=generators,
            device=device,
            show_progress=show_progress,
            callback=callback,
            **sampler_options,
        )
        # bf16 decodes in bf16 (2x faster, half the memory); fp16's range overflows decoders.
        with autocast(device, precision if precision == "bf16" else "fp32"):
            return self.decode(z0, options.tile).float()

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
        inputs: Mapping[str, Any],
        guidance: float,
        negatives: Mapping[str, Any] | None = None,
    ) -> tuple[Conditioning, Conditioning]:
        """(cond, uncond) for `conditional_unet` from `inputs` (values by each conditioner's
        `input_name`), checked against what the model was trained on (`guided_pair`);
        `negatives` (e.g. {"prompts": [...]}) take the place of the null condition."""
        return guided_pair(self.conditioners, inputs, n, guidance, self.device, negatives)
