"""What `ldmkit serve` runs with: the models, where jobs are kept, the address, the token and
the limits on what one request may ask."""

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from ldmkit.inputs import InputError

TOKEN_VARIABLE = "LDMKIT_TOKEN"


@dataclass(frozen=True)
class Limits:
    """The most one request may ask (a larger value is refused with 422 naming the field)."""

    max_steps: int = 150
    max_side: int = 2048  # pixels, width and height
    max_count: int = 8  # images per job
    max_upload_bytes: int = 20 * 2**20  # one uploaded image, encoded
    max_upload_pixels: int = 4096 * 4096  # one uploaded image, decoded (decompression bombs)
    queue_size: int = 32  # jobs waiting; one more is refused with 429


@dataclass(frozen=True)
class ServeConfig:
    """`checkpoints`: the models served (none: the shipped text-to-image model); `data`: the
    folder of the job database, uploads and images (kept across restarts)."""

    checkpoints: tuple[Path, ...] = ()
    data: Path = Path("runs/serve")
    host: str = "127.0.0.1"
    port: int = 7860
    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    device: str = "auto"
    preview_every: int = 5  # steps between previews
    # "approx": a linear map of the latent to colours (no decoder pass); "vae": the first
    # stage's decoder (the real picture, a decode's time every preview).
    preview: str = "approx"
    # LoRAs offered per job (`serve/loras.py`): DIR/NAME.safetensors; None: none.
    lora_dir: Path | None = None
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise InputError(f"--port must be in 1..65535; got {self.port}", "port")
        if self.token is not None and len(self.token) < 8:
            raise InputError("--token must be at least 8 characters", "token")
        if self.token is None and not is_loopback(self.host):
            raise InputError(
                f"--host {self.host} is reachable from other machines: give --token (or set "
                f"{TOKEN_VARIABLE}) so that only holders of it can use the API, or bind "
                "127.0.0.1",
                "host",
            )
        if self.preview_every < 1:
            raise InputError(f"preview_every must be >= 1; got {self.preview_every}")
        if self.lora_dir is not None and not self.lora_dir.is_dir():
            raise InputError(f"--lora-dir {self.lora_dir} is not a folder", "lora_dir")
        if self.preview not in ("approx", "vae"):
            raise InputError(f"--preview must be approx or vae; got {self.preview!r}", "preview")


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
