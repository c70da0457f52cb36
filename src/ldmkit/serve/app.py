"""The HTTP API (`/v1/...`) and the web page (`/`): `create_app(config)` builds the FastAPI
application around a job store and its worker; `ldmkit serve` runs it under uvicorn. Every
refusal says why: 422 names the field, 429 says when to retry, 401 asks for the token."""

import asyncio
import base64
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from ldmkit import __version__
from ldmkit.generation import GenerationRequest, check_request
from ldmkit.inputs import InputError
from ldmkit.interop.lora import prepare_lora
from ldmkit.nn.lora import LoraError
from ldmkit.serve.config import ServeConfig
from ldmkit.serve.models import default_checkpoints
from ldmkit.serve.store import Job, JobStore
from ldmkit.serve.uploads import IMAGE_FIELDS, decode_upload, save_upload
from ldmkit.serve.worker import Worker

PAGE = Path(__file__).parent / "page"
RETRY_AFTER_S = 10


def _invalid(error: InputError) -> JSONResponse:
    field = error.field or "body"
    detail = [{"loc": ["body", field], "msg": str(error), "type": "value_error"}]
    return JSONResponse({"detail": detail}, status_code=422)


def job_json(job: Job, worker: Worker, store: JobStore) -> dict[str, Any]:
    """A job as the API shows it: state, progress, ETA, image URLs, what was asked."""
    progress = worker.progress.get(job.id)
    steps = int(job.request.get("steps", 0))
    step, total = (progress.step, progress.total) if progress else (0, steps)
    if job.state == "done":
        step = total
    return {
        "id": job.id,
        "model": job.model,
        "state": job.state,
        "step": step,
        "total": total,
        "eta_s": progress.eta_s() if progress else None,
        "position": store.position(job) if job.state == "queued" else None,
        "created": job.created,
        "started": job.started,
        "finished": job.finished,
        "error": job.error,
        "images": [f"/v1/images/{image}.png" for image in job.image_ids()],
        "request": {k: v for k, v in job.request.items() if v not in (None, [], ())},
    }


def create_app(config: ServeConfig) -> FastAPI:
    """The application: `config.checkpoints` (or the shipped model) served from one worker."""
    store = JobStore(config.data)
    store.recover()
    worker = Worker(config, store, config.checkpoints or default_checkpoints())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker.start()
        yield
        worker.stop()
        store.close()

    app = FastAPI(title="ldmkit", version=__version__, lifespan=lifespan)
    app.state.store, app.state.worker, app.state.config = store, worker, config
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
        )

    def authorized(request: Request) -> None:
        if config.token is None:
            return
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else ""
        given = given or request.query_params.get("token", "")  # EventSource, <img> cannot
        if not hmac.compare_digest(given.encode(), config.token.encode()):
            raise HTTPException(
                401,
                "a bearer token is required: Authorization: Bearer TOKEN",
                {"WWW-Authenticate": "Bearer"},
            )

    api = APIRouter(prefix="/v1", dependencies=[Depends(authorized)])

    def found(job_id: str) -> Job:
        job = store.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return job

    @api.get("/health")
    def health() -> dict[str, Any]:
        """Whether the models are loaded, and how many jobs wait."""
        return {
            "status": worker.state,
            "error": worker.error,
            "waiting": store.waiting(),
            "running": list(worker.progress),
            "version": __version__,
        }

    @api.get("/models")
    def models() -> dict[str, Any]:
        """The models served: each one's name, hash, the request fields it takes, its size."""
        return {
            "state": worker.state,
            "models": [m.describe() for m in worker.models.values()],
            "loras": worker.loras.names(),
        }

    @api.post("/jobs", status_code=202)
    def submit(body: dict[str, Any] = Body(...)) -> Any:  # noqa: B008
        """Queue a generation; answers at once with the job (its id, its place in the queue).
        Fields: `model` and those of `ldmkit sample` (prompts, negative_prompt, classes,
        layouts, width, height, count, strength, sampler, steps, guidance, seed, precision,
        ...); init_image, mask, low_res and semantic as base64 or data URLs; `loras`:
        [{"name", "scale"}] of those /v1/models offers (or `<lora:NAME:SCALE>` in a prompt)."""
        if store.waiting() >= config.limits.queue_size:
            return JSONResponse(
                {"detail": f"the queue is full ({config.limits.queue_size} jobs wait); retry"},
                status_code=429,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        try:
            model_name, request, loras = _request(body, worker, config)
        except InputError as error:
            return _invalid(error)
        job_id = store.new_id()
        uploads = {}
        try:
            for name in IMAGE_FIELDS:
                if body.get(name) is not None:
                    image = decode_upload(name, body[name], config.limits)
                    uploads[name] = str(save_upload(image, store.uploads, f"{job_id}-{name}"))
        except InputError as error:
            return _invalid(error)
        request = replace(request, **uploads)
        asked = [{"name": name, "scale": scale} for name, scale in loras]
        job = store.add(
            model_name, {**request.to_dict(), **({"loras": asked} if asked else {})}, job_id
        )
        worker.notify()
        return job_json(job, worker, store)

    @api.get("/jobs")
    def jobs(limit: int = 50, state: str | None = None) -> dict[str, Any]:
        """The newest jobs first (the gallery): `state` filters (done, failed, ...)."""
        return {"jobs": [job_json(j, worker, store) for j in store.recent(min(limit, 500), state)]}

    @api.get("/jobs/{job_id}")
    def job(job_id: str) -> dict[str, Any]:
        return job_json(found(job_id), worker, store)

    @api.delete("/jobs/{job_id}")
    def cancel(job_id: str) -> dict[str, Any]:
        """Cancel a waiting job, or a running one at its next step."""
        job = found(job_id)
        if job.finished_state or not worker.cancel(job_id):
            raise HTTPException(
                409, f"job {job_id} is {job.state}; only waiting or running jobs cancel"
            )
        return job_json(found(job_id), worker, store)

    @api.get("/jobs/{job_id}/events")
    async def events(job_id: str) -> StreamingResponse:
        """Server-sent events: `queued`, `progress` (step, total, ETA), `preview` (a PNG data
        URL every few steps), then one of `done`, `failed`, `cancelled` with the job."""
        found(job_id)
        return StreamingResponse(_events(job_id, worker, store), media_type="text/event-stream")

    @api.get("/images/{image_id}.png")
    def image(image_id: str) -> FileResponse:
        job_id, _, index = image_id.rpartition("-")
        job = store.get(job_id)
        if job is None or job.state != "done" or not index.isdigit() or int(index) >= job.images:
            raise HTTPException(404, f"no image {image_id}")
        return FileResponse(store.image_path(image_id), media_type="image/png")

    app.include_router(api)
    app.mount("/static", StaticFiles(directory=PAGE), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(PAGE / "index.html", media_type="text/html")

    return app


def _request(
    body: dict[str, Any], worker: Worker, config: ServeConfig
) -> tuple[str, GenerationRequest, list[tuple[str, float]]]:
    """The model's name, the checked request of a job's JSON body and the LoRAs it asks for."""
    if not isinstance(body, dict):
        raise InputError("the body must be a JSON object of request fields")
    skipped = {"model", "loras", *IMAGE_FIELDS}
    values = {k: v for k, v in body.items() if k not in skipped}
    prompts = values.get("prompts")
    if isinstance(prompts, list) and all(isinstance(p, str) for p in prompts):
        negative = values.get("negative_prompt")
        negative = negative if isinstance(negative, str) else None
        loras, values["prompts"], cleaned = worker.loras.asked(body.get("loras"), prompts, negative)
        if negative is not None:
            values["negative_prompt"] = cleaned
    else:
        loras, _, _ = worker.loras.asked(body.get("loras"), [], None)
    request = GenerationRequest.from_dict(values)
    names = worker.names
    model_name = body.get("model") or names[0]
    if model_name not in names:
        raise InputError(f"model {model_name!r} is not served; the models are {names}", "model")
    limits = config.limits
    if request.options.steps > limits.max_steps:
        raise InputError(f"steps {request.options.steps} > the limit {limits.max_steps}", "steps")
    for name in ("width", "height"):
        value = getattr(request, name)
        if value is not None and value > limits.max_side:
            raise InputError(f"{name} {value} > the limit {limits.max_side} pixels", name)
    if request.count > limits.max_count:
        raise InputError(f"count {request.count} > the limit {limits.max_count}", "count")
    if worker.state == "ready":
        served = worker.models[model_name]
        uploads = {name: "upload" for name in IMAGE_FIELDS if body.get(name) is not None}
        check_request(served.model, replace(request, **uploads))
        options = served.model.resolve(request.options)
        request = replace(request, options=options)
        for name, scale in loras:  # fits this model? (read and checked, nothing merged)
            try:
                prepare_lora(served.model, worker.loras.path(name), scale)
            except LoraError as error:
                message = f"LoRA {name!r} does not fit {model_name}: {error}"
                raise InputError(message, "loras") from None
    elif worker.state == "failed":
        raise InputError(f"the models failed to load: {worker.error}", "model")
    return str(model_name), request, loras


async def _events(job_id: str, worker: Worker, store: JobStore) -> AsyncIterator[str]:
    def event(kind: str, data: Any) -> str:
        return f"event: {kind}\ndata: {json.dumps(data)}\n\n"

    seen_step, seen_preview, seen_position, idle = -1, -1, None, 0.0
    while True:
        job = store.get(job_id)
        if job is None:
            return
        progress = worker.progress.get(job_id)
        if job.state == "queued":
            position = store.position(job)
            if position != seen_position:
                yield event("queued", {"position": position})
                seen_position = position
        if progress is not None and progress.step != seen_step:
            seen_step = progress.step
            yield event(
                "progress",
                {"step": progress.step, "total": progress.total, "eta_s": progress.eta_s()},
            )
        if progress is not None and progress.preview and progress.preview_step != seen_preview:
            seen_preview = progress.preview_step
            png = base64.b64encode(progress.preview).decode()
            yield event("preview", {"step": seen_preview, "image": f"data:image/png;base64,{png}"})
        if job.finished_state:
            yield event(job.state, job_json(job, worker, store))
            return
        await asyncio.sleep(0.2)
        idle += 0.2
        if idle >= 15:
            idle = 0.0
            yield ": keep-alive\n\n"
