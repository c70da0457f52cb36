"""The HTTP API in process (FastAPI's TestClient) on the shipped text-to-image model: every
endpoint, every refusal (422 names the field, 404, 409, 429, 401), cancel while running,
events, and jobs that outlive the process."""

import base64
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient

from ldmkit.inputs import InputError
from ldmkit.serve import Limits, ServeConfig, create_app
from ldmkit.serve.store import JobStore

PROMPT = "a large red circle"


def _client(tmp: Path, **changes: object) -> TestClient:
    return TestClient(create_app(ServeConfig(data=tmp, **changes)))  # type: ignore[arg-type]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path) as running:  # the context runs the lifespan: the worker starts
        _ready(running)
        yield running


def _ready(client: TestClient, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + 120
    while client.get("/v1/health", headers=headers).json()["status"] == "loading":
        assert time.monotonic() < deadline, "the model did not load"
        time.sleep(0.05)


def _wait(client: TestClient, job_id: str, until: tuple[str, ...] = ("done",)) -> dict:
    deadline = time.monotonic() + 120
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("done", "failed", "cancelled"):
            assert job["state"] in until, job
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def _field(response: object) -> str:
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    return response.json()["detail"][0]["loc"][-1]  # type: ignore[attr-defined]


def _png_base64(size: tuple[int, int], colour: str = "red") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_a_job_runs_and_its_image_carries_its_parameters(client: TestClient) -> None:
    health = client.get("/v1/health").json()
    assert health["status"] == "ready" and health["waiting"] == 0
    (model,) = client.get("/v1/models").json()["models"]
    assert {"prompts", "negative_prompt", "init_image"} <= set(model["inputs"])
    assert model["kind"] == "text-conditional" and model["name"] == "shapes_t2i"
    body = {"prompts": [PROMPT], "steps": 4, "seed": 7, "count": 2, "sampler": "DPM++ 2M Karras"}
    answer = client.post("/v1/jobs", json=body)
    assert answer.status_code == 202 and answer.json()["state"] in ("queued", "running")
    job = _wait(client, answer.json()["id"])
    assert job["step"] == job["total"] == 4 and len(job["images"]) == 2
    response = client.get(job["images"][1])
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (model["size"], model["size"])
    recorded = json.loads(image.text["ldmkit"])
    assert recorded["index"] == 1 and recorded["seed"] == 7 and recorded["prompts"] == [PROMPT]
    assert recorded["sampler"] == "dpm++2m" and recorded["karras"] is True
    webui = image.text["parameters"]
    assert webui.startswith(PROMPT + "\n") and "Seed: 8," in webui  # image 1: seed + 1
    assert "Sampler: DPM++ 2M Karras" in webui and f"Model hash: {model['hash']}" in webui
    listed = client.get("/v1/jobs?state=done").json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]


def test_every_refusal_names_what_to_change(client: TestClient) -> None:
    assert _field(client.post("/v1/jobs", json={"prompts": [PROMPT], "steps": 0})) == "steps"
    assert _field(client.post("/v1/jobs", json={"prompts": [PROMPT], "steps": 151})) == "steps"
    assert _field(client.post("/v1/jobs", json={"prompts": [PROMPT], "count": 9})) == "count"
    assert _field(client.post("/v1/jobs", json={"prompts": [PROMPT], "width": 4096})) == "width"
    assert _field(client.post("/v1/jobs", json={"prompts": [PROMPT], "width": 30})) == "width"
    assert _field(client.post("/v1/jobs", json={"prompt": PROMPT})) == "prompt"  # unknown
    assert _field(client.post("/v1/jobs", json={"steps": 2})) == "prompts"  # a text model
    assert _field(client.post("/v1/jobs", json={"prompts": [PROMPT], "classes": [1]})) == "classes"
    bad = {"prompts": [PROMPT], "sampler": "warp"}
    assert _field(client.post("/v1/jobs", json=bad)) == "sampler"
    other = {"prompts": [PROMPT], "model": "nope"}
    assert _field(client.post("/v1/jobs", json=other)) == "model"
    for image in ("not base64!", base64.b64encode(b"not an image").decode()):
        upload = {"prompts": [PROMPT], "init_image": image}
        assert _field(client.post("/v1/jobs", json=upload)) == "init_image"
    bomb = {"prompts": [PROMPT], "init_image": _png_base64((5000, 5000))}  # 25 MP, a few KB
    response = client.post("/v1/jobs", json=bomb)
    assert _field(response) == "init_image" and "pixels" in response.text
    assert client.get("/v1/jobs/nothing").status_code == 404
    assert client.delete("/v1/jobs/nothing").status_code == 404
    assert client.get("/v1/images/nothing-0.png").status_code == 404


def test_image_to_image_takes_an_uploaded_image(client: TestClient) -> None:
    body = {"prompts": [PROMPT], "steps": 4, "init_image": _png_base64((64, 48)), "strength": 0.5}
    job = _wait(client, client.post("/v1/jobs", json=body).json()["id"])
    image = Image.open(io.BytesIO(client.get(job["images"][0]).content))
    assert image.size == (64, 48)  # the upload's size and aspect
    assert "Denoising strength: 0.5" in image.text["parameters"]


def test_a_running_job_cancels_at_its_next_step(client: TestClient) -> None:
    body = {"prompts": [PROMPT], "steps": 150, "count": 8}
    job_id = client.post("/v1/jobs", json=body).json()["id"]
    deadline = time.monotonic() + 60
    while client.get(f"/v1/jobs/{job_id}").json()["step"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
    job = _wait(client, job_id, until=("cancelled",))
    assert job["images"] == [] and job["error"] == "cancelled while running"
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 409  # finished


def test_events_stream_progress_previews_and_the_end(client: TestClient) -> None:
    body = {"prompts": [PROMPT], "steps": 100}  # long enough to be watched
    job_id = client.post("/v1/jobs", json=body).json()["id"]
    kinds, previews = [], []
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
                kinds.append(kind)
            elif line.startswith("data: ") and kind == "preview":
                previews.append(json.loads(line[6:])["image"])
            if kind == "done" and line.startswith("data: "):
                break
    assert kinds[-1] == "done" and "progress" in kinds, kinds
    assert previews and previews[-1].startswith("data:image/png;base64,")
    preview = Image.open(io.BytesIO(base64.b64decode(previews[-1].split(",", 1)[1])))
    assert min(preview.size) >= 64


def test_a_full_queue_answers_429_and_waiting_jobs_cancel(tmp_path: Path) -> None:
    client = _client(tmp_path, limits=Limits(queue_size=2))  # no lifespan: nothing runs
    first = client.post("/v1/jobs", json={"prompts": [PROMPT]}).json()
    assert client.post("/v1/jobs", json={"prompts": [PROMPT]}).status_code == 202
    full = client.post("/v1/jobs", json={"prompts": [PROMPT]})
    assert full.status_code == 429 and int(full.headers["Retry-After"]) > 0
    assert first["position"] == 0
    assert client.delete(f"/v1/jobs/{first['id']}").json()["state"] == "cancelled"
    assert client.post("/v1/jobs", json={"prompts": [PROMPT]}).status_code == 202


def test_accepted_jobs_survive_a_restart(tmp_path: Path) -> None:
    before = _client(tmp_path)  # accepts without running (no lifespan)
    ids = [before.post("/v1/jobs", json={"prompts": [PROMPT], "steps": 2}).json()["id"]]
    ids.append(before.post("/v1/jobs", json={"prompts": [PROMPT], "steps": 2}).json()["id"])
    store = JobStore(tmp_path)
    assert store.start(ids[0])  # as if the process died while running it
    store.close()
    with _client(tmp_path) as after:
        _ready(after)
        jobs = [_wait(after, job_id) for job_id in ids]
    assert all(j["state"] == "done" and len(j["images"]) == 1 for j in jobs)


def test_a_token_guards_every_api_call(tmp_path: Path) -> None:
    secret = "correct horse battery"
    with _client(tmp_path, token=secret, host="0.0.0.0") as client:
        assert client.get("/v1/health").status_code == 401
        wrong = {"Authorization": "Bearer wrong token"}
        assert client.get("/v1/models", headers=wrong).status_code == 401
        right = {"Authorization": f"Bearer {secret}"}
        _ready(client, right)
        assert client.get("/v1/models", headers=right).status_code == 200
        assert client.get(f"/v1/health?token={secret}").status_code == 200  # EventSource's way
        assert client.get("/").status_code == 200  # the page itself holds no secret
    with pytest.raises(InputError, match="--token") as refused:
        ServeConfig(data=tmp_path, host="0.0.0.0")
    assert refused.value.field == "host"


def test_the_page_and_its_files_are_served_offline(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
    assert client.get("/docs").status_code == 200


def test_sample_from_a_served_image_reproduces_it_bit_for_bit(
    client: TestClient, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from ldmkit.cli import app

    body = {"prompts": [PROMPT], "steps": 5, "seed": 3, "count": 2, "guidance": 4.0}
    body["negative_prompt"] = "a small blue star"
    job = _wait(client, client.post("/v1/jobs", json=body).json()["id"])
    served = tmp_path / "served.png"
    served.write_bytes(client.get(job["images"][1]).content)
    again = tmp_path / "again.png"
    result = CliRunner().invoke(app, ["sample", "--from", str(served), "--out", str(again)])
    assert result.exit_code == 0, result.output
    assert Image.open(again).tobytes() == Image.open(served).tobytes()
    assert "Negative prompt: a small blue star" in Image.open(served).text["parameters"]


def test_previews_can_be_decoded_by_the_first_stage(tmp_path: Path) -> None:
    with _client(tmp_path, preview="vae", preview_every=2) as client:
        _ready(client)
        body = {"prompts": [PROMPT], "steps": 100}  # long enough to be watched
        job_id = client.post("/v1/jobs", json=body).json()["id"]
        previews = []
        with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            kind = None
            for line in stream.iter_lines():
                kind = line[7:] if line.startswith("event: ") else kind
                if kind == "preview" and line.startswith("data: "):
                    previews.append(json.loads(line[6:]))
                if kind == "done" and line.startswith("data: "):
                    break
    assert previews and all(p["step"] % 2 == 0 for p in previews)
    image = Image.open(io.BytesIO(base64.b64decode(previews[-1]["image"].split(",", 1)[1])))
    assert image.size == (64, 64)  # the decoder's picture, at the model's size
    with pytest.raises(InputError, match="--preview must be"):
        ServeConfig(data=tmp_path, preview="full")


def test_loras_are_merged_per_job_and_recorded(tmp_path: Path) -> None:
    pytest.importorskip("peft", reason="the LoRA is made with peft")
    from tiny_models import strong_random_lora
    from typer.testing import CliRunner

    from ldmkit.cli import app

    folder = tmp_path / "loras"
    strong_random_lora(folder / "strong.safetensors")
    (folder / "alien.safetensors").write_bytes(b"not a safetensors file")
    with _client(tmp_path / "serve", lora_dir=folder) as client:
        _ready(client)
        assert client.get("/v1/models").json()["loras"] == ["alien", "strong"]
        body = {"prompts": [PROMPT], "steps": 5, "seed": 3}

        def image(job: dict) -> bytes:  # the pixels (the PNG's text differs by job)
            return Image.open(io.BytesIO(client.get(job["images"][0]).content)).tobytes()

        plain = _wait(client, client.post("/v1/jobs", json=body).json()["id"])
        tagged = {**body, "prompts": [f"{PROMPT} <lora:strong:1>"]}
        merged = _wait(client, client.post("/v1/jobs", json=tagged).json()["id"])
        assert merged["request"]["prompts"] == [PROMPT]  # the tag is not read as words
        assert merged["request"]["loras"] == [{"name": "strong", "scale": 1.0}]
        listed = {**body, "loras": [{"name": "strong", "scale": 1}]}
        same = _wait(client, client.post("/v1/jobs", json=listed).json()["id"])
        again = _wait(client, client.post("/v1/jobs", json=body).json()["id"])
        assert image(merged) != image(plain) and image(same) == image(merged)
        assert image(again) == image(plain)  # the weights were put back bit for bit
        served = tmp_path / "served.png"
        served.write_bytes(client.get(merged["images"][0]).content)
        text = Image.open(served).text["parameters"]
        assert "<lora:strong:1>" in text and 'Lora hashes: "strong: ' in text
        copy = tmp_path / "copy.png"
        result = CliRunner().invoke(app, ["sample", "--from", str(served), "--out", str(copy)])
        assert result.exit_code == 0, result.output
        assert Image.open(copy).tobytes() == Image.open(served).tobytes()
        for refused, said in (
            ({"loras": [{"name": "../strong"}]}, "no LoRA '../strong'"),
            ({"loras": [{"name": "strong", "scale": "lots"}]}, "must be a number"),
            ({"prompts": [f"{PROMPT} <lora:strong:1> <lora:strong:0.5>"]}, "at scales 1.0 and"),
            ({"prompts": [f"{PROMPT} <lora:alien:1>"]}, "LoRA 'alien' does not fit"),
        ):
            response = client.post("/v1/jobs", json={**body, **refused})
            assert _field(response) == "loras" and said in response.text, response.text
    with _client(tmp_path / "plain") as client:
        _ready(client)
        response = client.post("/v1/jobs", json={**body, "prompts": [f"{PROMPT} <lora:x:1>"]})
        assert _field(response) == "loras" and "start it with --lora-dir" in response.text
