"""The worker: one thread per device that loads the models once, then runs the oldest waiting
job, step by step, with its progress, an ETA and a preview every few steps kept in memory for
the events stream; a cancel takes effect at the next step. Images are written before the job
is marked done."""

import io
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import torch

from ldmkit.generation import GenerationRequest, generate, save_image
from ldmkit.hardware import select_device
from ldmkit.images import to_uint8
from ldmkit.inputs import InputError
from ldmkit.interop.lora import loras_merged
from ldmkit.nn.lora import LoraError
from ldmkit.serve.config import ServeConfig
from ldmkit.serve.loras import LoraLibrary
from ldmkit.serve.models import ServedModel, load_models, served_names
from ldmkit.serve.store import JobStore


class Cancelled(Exception):
    """Raised from the step callback when the running job is cancelled."""


@dataclass
class Progress:
    """How far the running job is, for `GET /v1/jobs/{id}` and its events."""

    step: int = 0
    total: int = 0
    started: float = field(default_factory=time.monotonic)
    preview: bytes | None = None  # PNG
    preview_step: int = 0
    cancel: bool = False

    def eta_s(self) -> float | None:
        if self.step == 0 or self.total == 0:
            return None
        elapsed = time.monotonic() - self.started
        return round(elapsed / self.step * (self.total - self.step), 1)


class Worker:
    """Runs `store`'s jobs on `config.device` in a background thread (`start` / `stop`)."""

    def __init__(self, config: ServeConfig, store: JobStore, checkpoints: tuple[Any, ...]):
        self.config, self.store, self.checkpoints = config, store, checkpoints
        self.models: dict[str, ServedModel] = {}
        self.names = served_names(checkpoints)  # known before the models load
        self.loras = LoraLibrary(config.lora_dir)
        self.state = "loading"  # -> ready / failed
        self.error: str | None = None
        self.progress: dict[str, Progress] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ldmkit-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the running job's current step; that job is queued again."""
        self._stop.set()
        self._wake.set()
        for progress in list(self.progress.values()):
            progress.cancel = True
        self._thread.join(timeout)

    def notify(self) -> None:
        """A job was queued."""
        self._wake.set()

    def cancel(self, job_id: str) -> bool:
        """Cancel a waiting job now, or a running one at its next step; false if neither."""
        if self.store.cancel_waiting(job_id):
            return True
        progress = self.progress.get(job_id)
        if progress is None:
            return False
        progress.cancel = True
        return True

    def _run(self) -> None:
        try:
            device = select_device(self.config.device)
            self.models = load_models(self.checkpoints, device)
            self.state = "ready"
        except Exception as error:  # a server that cannot load its models says why
            self.state, self.error = "failed", f"{type(error).__name__}: {error}"
            return
        while not self._stop.is_set():
            job = self.store.next_queued()
            if job is None:
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                continue
            if self.store.start(job.id):
                self._execute(job.id, job.model, job.request)

    def _execute(self, job_id: str, model_name: str, values: dict[str, Any]) -> None:
        progress = self.progress[job_id] = Progress()
        served = self.models.get(model_name)
        try:
            if served is None:
                raise InputError(f"model {model_name!r} is not served", "model")
            values = dict(values)
            loras = [(self.loras.path(x["name"]), x["scale"]) for x in values.pop("loras", [])]
            request = GenerationRequest.from_dict(values)

            def step(done: int, total: int, z: torch.Tensor) -> None:
                progress.step, progress.total = done, total
                if done % self.config.preview_every == 0 or done == total:
                    buffer = io.BytesIO()
                    self._preview(served, z).save(buffer, format="PNG")
                    progress.preview, progress.preview_step = buffer.getvalue(), done
                if progress.cancel:
                    raise Cancelled

            with loras_merged(served.model, loras) as applied:  # this job's alone
                images = generate(served.model, request, callback=step)
            if not torch.isfinite(images).all():
                raise RuntimeError("the model produced NaN or infinite values; nothing was saved")
            self._save(job_id, served, request, images, [a.to_dict() for a in applied])
            self.store.finish(job_id, "done", images=len(images))
        except Cancelled:
            if self._stop.is_set():  # the server stops: the job runs again at the next start
                self.store.requeue(job_id)
            else:
                self.store.finish(job_id, "cancelled", error="cancelled while running")
        except (InputError, LoraError) as error:
            self.store.finish(job_id, "failed", error=str(error))
        except Exception as error:  # the job fails with its reason; the server goes on
            traceback.print_exc()
            self.store.finish(job_id, "failed", error=f"{type(error).__name__}: {error}")
        finally:
            self.progress.pop(job_id, None)

    def _preview(self, served: ServedModel, z: torch.Tensor) -> Any:
        """The first image of the batch at this step, as `config.preview` says."""
        if self.config.preview == "approx":
            return served.preview(z)
        from PIL import Image

        with torch.no_grad():
            decoded = served.model.decode(z[:1].float())
        return Image.fromarray(to_uint8(decoded)[0])

    def _save(
        self,
        job_id: str,
        served: ServedModel,
        request: GenerationRequest,
        images: torch.Tensor,
        loras: list[dict[str, Any]],
    ) -> None:
        from PIL import Image

        described = {"checkpoint": str(served.checkpoint), "name": served.name, "hash": served.hash}
        for i, array in enumerate(to_uint8(images)):
            path = self.store.image_path(f"{job_id}-{i}")
            extras: dict[str, Any] = {"job": job_id, "weights": served.model.weight_precision}
            if loras:
                extras["loras"] = loras
            save_image(Image.fromarray(array), path, request, i, described, extras)
