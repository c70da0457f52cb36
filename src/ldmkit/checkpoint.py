"""Checkpoints on disk: a directory of safetensors weights plus a JSON config, written atomically.

Layout of a model directory::

    config.json         {"format": "ldmkit", "model": "<kind>", "config": {...}, ...}
    model.safetensors   every parameter and persistent buffer

Nothing here unpickles: tensors come from safetensors, everything else from JSON.
"""

import dataclasses
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ldmkit.autoencoder import Autoencoder, AutoencoderConfig, pixel_space
from ldmkit.conditioning import ClipCondition
from ldmkit.config import ConfigError, from_dict, to_dict
from ldmkit.data.config import DataConfig
from ldmkit.fault_points import fault_point
from ldmkit.metrics.class_evaluator import ClassEvaluator, EvaluatorConfig
from ldmkit.pipeline import DiffusionConfig, LatentDiffusion

FORMAT = "ldmkit"
CONFIG_FILE = "config.json"
T = TypeVar("T")
WEIGHTS_FILE = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or of the wrong kind; the message says which."""


def write_directory_atomically(target: Path, write: Callable[[Path], None]) -> Path:
    """Have `write` fill a temporary directory, then move it to `target` in one rename.

    An existing `target` is replaced only after the new one is complete, so a crash mid-write
    never leaves a half-written checkpoint under the final name.
    """
    target = Path(target)
    try:
        return _write_directory(target, write)
    except (OSError, SafetensorError) as error:  # a full disk, a read-only folder
        raise CheckpointError(_write_failed(target, error)) from error


def _write_failed(target: Path, error: Exception) -> str:
    reason = getattr(error, "strerror", None) or str(error)
    return (
        f"could not write {target}: {reason}; anything saved there before is intact (free "
        "space or fix the folder, then run the same command again)"
    )


def _write_directory(target: Path, write: Callable[[Path], None]) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        write(tmp)
        for path in tmp.rglob("*"):
            if path.is_file():
                with path.open("rb") as handle:
                    os.fsync(handle.fileno())
        fault_point("checkpoint-written")
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
            fault_point("checkpoint-between-renames")
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target


def write_file(path: Path, write: Callable[[Path], None]) -> None:
    """Write one file: `write(tmp)` fills a temporary name beside `path`, which is then renamed
    over it atomically; a failure leaves whatever was at `path` untouched."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as error:
        raise CheckpointError(_write_failed(path, error)) from error
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    """Write JSON to `path` through a temporary file and an atomic rename."""
    write_file(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=False)))


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Save tensors as safetensors (copies made contiguous and unshared)."""
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(path))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file with a clear error when it is missing or corrupt."""
    if not path.is_file():
        raise CheckpointError(f"missing weights file {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path} is not a readable safetensors file: {error}") from error


def read_config(directory: Path, expected_model: str) -> dict[str, Any]:
    """Read and check a checkpoint's config.json; `expected_model` names the model kind."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{directory} is not an ldmkit checkpoint: {CONFIG_FILE} is missing "
            "(pass the directory written by `ldmkit train-autoencoder`, e.g. RUN/model)"
        )
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from error
    if meta.get("format") != FORMAT or "model" not in meta:
        raise CheckpointError(f"{path} is not an ldmkit checkpoint config")
    if meta["model"] != expected_model:
        raise CheckpointError(
            f"{directory} holds a {meta['model']!r} checkpoint, but a {expected_model!r} one "
            "is needed here"
        )
    return meta


def save_autoencoder(
    model: Autoencoder, directory: Path, extra: dict[str, Any] | None = None
) -> Path:
    """Write an autoencoder (weights, config, latent statistics) to `directory` atomically."""
    return write_directory_atomically(directory, lambda tmp: _write_autoencoder(model, tmp, extra))


def _write_autoencoder(model: Autoencoder, directory: Path, extra: dict[str, Any] | None) -> None:
    meta = {
        "format": FORMAT,
        "model": "autoencoder",
        "config": to_dict(model.config),
        "latent": {"shift": float(model.latent_shift), "scale": float(model.latent_scale)},
        **(extra or {}),
    }
    directory.mkdir(parents=True, exist_ok=True)
    save_tensors(model.state_dict(), directory / WEIGHTS_FILE)
    write_json(directory / CONFIG_FILE, meta)


def load_autoencoder(directory: Path, device: str | torch.device = "cpu") -> Autoencoder:
    """Load an autoencoder saved by `save_autoencoder`; needs nothing but the directory."""
    model = Autoencoder(read_typed_config(Path(directory), "autoencoder", AutoencoderConfig))
    load_state(model, load_tensors(Path(directory) / WEIGHTS_FILE), Path(directory))
    return model.to(device).eval()


PIXELS = "pixels"


def load_first_stage(spec: str | Path, channels: int = 3) -> Autoencoder:
    """An autoencoder folder, or "pixels" (no such folder) for the identity first stage."""
    if str(spec) == PIXELS and not Path(spec).exists():
        return Autoencoder(pixel_space(channels)).eval()
    return load_autoencoder(Path(spec))


def training_data(directory: Path, model: str = "latent-diffusion") -> DataConfig:
    """The data a checkpoint (`model`: "latent-diffusion" or "autoencoder") was trained on
    (caching off), from its config."""
    recorded = read_config(directory, model).get("training", {}).get("data")
    if recorded is None:
        raise CheckpointError(f"{directory} does not record its training data; name it with --data")
    try:
        return dataclasses.replace(from_dict(DataConfig, recorded), cache=False)
    except ConfigError as error:
        raise CheckpointError(f"{directory}: bad training data record: {error}") from error


def read_typed_config(directory: Path, expected_model: str, cls: type[T]) -> T:
    """`read_config`, then its "config" entry as the dataclass `cls` (strictly)."""
    meta = read_config(directory, expected_model)
    try:
        return from_dict(cls, meta["config"])
    except ConfigError as error:
        raise CheckpointError(f"{directory}: invalid {expected_model} config: {error}") from error


def load_state(
    module: torch.nn.Module, state: dict[str, torch.Tensor], source: Path, assign: bool = False
) -> None:
    """Strict load_state_dict with an error that lists missing and unexpected keys; `assign`
    makes the given tensors the module's own (no copy: a module built on the meta device)."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{source}: weights do not match the config: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, wrong shape {shapes[:5]}"
        )
    module.load_state_dict(state, assign=assign)


AUTOENCODER_DIR = "autoencoder"


def save_latent_diffusion(
    model: LatentDiffusion,
    directory: Path,
    unet_state: dict[str, torch.Tensor] | None = None,
    extra: dict[str, Any] | None = None,
    context_state: dict[str, torch.Tensor] | None = None,
    half: bool = False,
) -> Path:
    """Write an LDM: UNet weights (`unet_state`, e.g. the EMA ones), config, its autoencoder,
    and the trained context encoder (`context_state`) of text models with their tokenizer and
    of layout models. A frozen CLIP is not copied: the config names its directory. `half`
    stores the UNet's and context encoder's floats as float16 (half the size, e.g. for shipping;
    loading casts them back to the model's float32)."""

    def cast(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not half:
            return state
        return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}

    def write(tmp: Path) -> None:
        save_tensors(cast(unet_state or model.unet.state_dict()), tmp / WEIGHTS_FILE)
        for conditioner in model.conditioners:
            module = conditioner.trained_module()
            if module is not None and conditioner.weights_file is not None:
                state = context_state or module.state_dict()
                save_tensors(cast(state), tmp / conditioner.weights_file)
            conditioner.save_files(tmp)
        meta = {
            "format": FORMAT,
            "model": "latent-diffusion",
            "config": to_dict(model.config),
            "first_stage": _first_stage_record(model.autoencoder),
            **(extra or {}),
        }
        write_json(tmp / CONFIG_FILE, meta)
        _write_autoencoder(model.autoencoder, tmp / AUTOENCODER_DIR, None)

    return write_directory_atomically(directory, write)


def load_latent_diffusion(
    directory: Path, device: str | torch.device = "cpu", clip_path: Path | None = None
) -> LatentDiffusion:
    """Load an LDM saved by `save_latent_diffusion` (autoencoder included); `clip_path` points a
    CLIP-conditioned model at its text encoder's directory when it moved."""
    directory = Path(directory)
    config = read_typed_config(directory, "latent-diffusion", DiffusionConfig)
    if clip_path is not None:
        config = _moved_clip(config, clip_path, directory)
    loaded: dict[str, Any] = {}
    for entry in config.conditioners:
        try:
            files = entry.load_files(directory)
        except (FileNotFoundError, ValueError) as error:
            raise CheckpointError(
                f"{directory}: the {entry.kind} conditioner's files: {error}"
            ) from error
        if files is not None:
            loaded[entry.kind] = files
    autoencoder = load_autoencoder(directory / AUTOENCODER_DIR)
    _check_first_stage(directory, config, autoencoder)
    try:
        model = LatentDiffusion(config, autoencoder, loaded)
    except (FileNotFoundError, ImportError, ValueError) as error:
        if config.conditioner("clip") is None:
            raise
        raise CheckpointError(
            f"{directory}: its CLIP text encoder: {error}; point to it with "
            "load_latent_diffusion(clip_path=DIR) or the clip entry's encoder.path in config.json"
        ) from error
    load_state(model.unet, load_tensors(directory / WEIGHTS_FILE), directory)
    for conditioner in model.conditioners:
        module = conditioner.trained_module()
        if module is not None and conditioner.weights_file is not None:
            load_state(module, load_tensors(directory / conditioner.weights_file), directory)
    return model.to(device).eval()


def _first_stage_record(autoencoder: Autoencoder) -> dict[str, Any]:
    """What an LDM records of the first stage it was trained on (checked when it loads)."""
    c = autoencoder.config
    return {"kind": c.kind, "factor": c.factor, "z_channels": c.z_channels}


def _check_first_stage(directory: Path, config: DiffusionConfig, autoencoder: Autoencoder) -> None:
    """The autoencoder in the folder must be the one the LDM was trained on: same kind, factor
    and latent channels (older checkpoints: the factor their training data implies), or the
    samples would be silently wrong (a swapped f=2 first stage gives half-size images)."""
    meta = read_config(directory, "latent-diffusion")
    recorded = meta.get("first_stage")
    if recorded is None:  # written before the record: the data's resolution / latent side
        resolution = meta.get("training", {}).get("data", {}).get("resolution")
        if not resolution or resolution % config.latent_size:
            return
        recorded = {"factor": resolution // config.latent_size}
    found = _first_stage_record(autoencoder)
    changed = [
        f"{key} {found[key]} (trained on {value})"
        for key, value in recorded.items()
        if key in found and found[key] != value
    ]
    if changed:
        raise CheckpointError(
            f"{directory / AUTOENCODER_DIR} is not the first stage this LDM was trained on: "
            f"{', '.join(changed)}; put back the autoencoder it was trained with"
        )


def _moved_clip(config: DiffusionConfig, clip_path: Path, directory: Path) -> DiffusionConfig:
    """`config` with its CLIP conditioner reading the encoder from `clip_path`."""
    clip = config.conditioner("clip")
    if not isinstance(clip, ClipCondition):
        raise CheckpointError(f"{directory}: clip_path given, but the model uses no CLIP")
    moved = dataclasses.replace(
        clip, encoder=dataclasses.replace(clip.encoder, path=str(clip_path))
    )
    entries = tuple(moved if entry is clip else entry for entry in config.conditioners)
    return dataclasses.replace(config, conditioners=entries)


def save_evaluator(
    model: ClassEvaluator, directory: Path, extra: dict[str, Any] | None = None
) -> Path:
    """Write an adherence evaluator (weights + config) atomically."""

    def write(tmp: Path) -> None:
        save_tensors(model.state_dict(), tmp / WEIGHTS_FILE)
        meta = {"format": FORMAT, "model": "class-evaluator", "config": to_dict(model.config)}
        write_json(tmp / CONFIG_FILE, {**meta, **(extra or {})})

    return write_directory_atomically(directory, write)


def load_evaluator(directory: Path, device: str | torch.device = "cpu") -> ClassEvaluator:
    """Load an adherence evaluator saved by `save_evaluator`."""
    directory = Path(directory)
    model = ClassEvaluator(read_typed_config(directory, "class-evaluator", EvaluatorConfig))
    load_state(model, load_tensors(directory / WEIGHTS_FILE), directory)
    return model.to(device).eval()
