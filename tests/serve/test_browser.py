"""The web page in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`,
driven by Selenium) against a real server on a free loopback port. It types a prompt, clicks
Generate, sees the progress bar move, waits for the image, checks its size and the parameters
in its PNG, reuses them from the gallery, and saves the screenshot the README shows."""

import io
import json
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("uvicorn")
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ready  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from ldmkit.serve import ServeConfig, create_app  # noqa: E402

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "serve.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver") or "/usr/lib/chromium/chromedriver"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None or not Path(DRIVER).exists(),
        reason="needs Debian's chromium and chromium-driver (make installs them)",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _running(config: ServeConfig) -> Iterator[str]:
    """A real server for `config` on its loopback port, in a thread, until the block ends."""
    import uvicorn

    app = create_app(config)
    runner = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=config.port, log_level="warning")
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{config.port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{base}/v1/health") as answer:
                if json.load(answer)["status"] == "ready":
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.2)
    try:
        yield base
    finally:
        runner.should_exit = True
        thread.join(30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with _running(ServeConfig(data=tmp_path, port=_free_port())) as base:
        yield base


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(flag)
    options.add_argument("--disable-dev-shm-usage")
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_generate_in_the_page_and_reuse_the_settings(server: str, browser: object) -> None:
    b = browser  # type: ignore[assignment]
    wait = WebDriverWait(b, 120)
    b.get(server + "/")
    wait.until(lambda d: d.find_element(By.ID, "model").get_attribute("value"))
    prompt = "a large red circle"
    b.find_element(By.ID, "prompt").send_keys(prompt)
    for field, value in (("steps", "30"), ("seed", "11"), ("count", "1")):
        box = b.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    b.find_element(By.ID, "generate").click()
    seen = set()
    deadline = time.monotonic() + 120
    while not b.find_elements(By.CSS_SELECTOR, "#result img.output"):
        seen.add(float(b.find_element(By.ID, "progress").get_attribute("value")))
        if time.monotonic() > deadline:
            status = b.find_element(By.ID, "status").text
            error = b.find_element(By.ID, "error").text
            logs = b.get_log("browser") if hasattr(b, "get_log") else []
            pytest.fail(f"no image came: status {status!r}, error {error!r}, console {logs}")
        time.sleep(0.02)
    assert any(0 < v < 30 for v in seen), f"the progress bar never moved between ends: {seen}"
    image = b.find_element(By.CSS_SELECTOR, "#result img.output")
    wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", image) > 0)
    size = b.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", image)
    with urllib.request.urlopen(image.get_attribute("src")) as answer:
        png = Image.open(io.BytesIO(answer.read()))
    assert list(png.size) == size
    recorded = json.loads(png.text["ldmkit"])
    assert (recorded["prompts"], recorded["steps"], recorded["seed"]) == ([prompt], 30, 11)
    assert png.text["parameters"].startswith(prompt) and "Seed: 11," in png.text["parameters"]
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#gallery .card")))
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    b.save_screenshot(str(SCREENSHOT))
    b.find_element(By.ID, "prompt").clear()
    b.find_element(By.ID, "seed").clear()
    b.find_element(By.CSS_SELECTOR, "#gallery .card button.use").click()
    assert b.find_element(By.ID, "prompt").get_attribute("value") == prompt
    assert b.find_element(By.ID, "seed").get_attribute("value") == "11"
    assert b.find_element(By.ID, "steps").get_attribute("value") == "30"


@pytest.fixture
def five_models(tmp_path: Path) -> Iterator[str]:
    """A server with the shipped text model and tiny class, inpainting, layout and x4
    super-resolution models."""
    from tiny_models import tiny_layout_ldm, tiny_ldm, tiny_spatial_ldm

    from ldmkit.assets import SHAPES_TEXT_TO_IMAGE
    from ldmkit.checkpoint import save_latent_diffusion

    models = {
        "classes": tiny_ldm(num_classes=5),
        "inpainter": tiny_spatial_ldm("inpaint"),
        "layouts": tiny_layout_ldm(),
        "upscaler": tiny_spatial_ldm("super_resolution"),
    }
    for name, model in models.items():
        save_latent_diffusion(model, tmp_path / name)
    checkpoints = (SHAPES_TEXT_TO_IMAGE, *(tmp_path / name for name in models))
    config = ServeConfig(checkpoints=checkpoints, data=tmp_path / "serve", port=_free_port())
    with _running(config) as base:
        yield base


OUTPUTS = "return [...document.querySelectorAll('#result img.output')].map(i => i.src)"


def _generate_and_read(b: object, wait: object) -> tuple[Image.Image, dict]:
    """Click Generate, wait for the new image, and read its PNG and record. Sources are read
    in the page (one script call), since the page replaces the image elements as jobs end."""
    old = set(b.execute_script(OUTPUTS))  # type: ignore[attr-defined]
    b.find_element(By.ID, "generate").click()  # type: ignore[attr-defined]

    def new_image(d: object) -> object:
        fresh = [src for src in d.execute_script(OUTPUTS) if src not in old]  # type: ignore[attr-defined]
        if not fresh:
            error = d.find_element(By.ID, "error").text  # type: ignore[attr-defined]
            status = d.find_element(By.ID, "status").text  # type: ignore[attr-defined]
            assert not error and not status.startswith("failed"), (error, status)
        return fresh[0] if fresh else False

    source = wait.until(new_image)  # type: ignore[attr-defined]
    with urllib.request.urlopen(source) as answer:
        png = Image.open(io.BytesIO(answer.read()))
    return png, json.loads(png.text["ldmkit"])


def test_the_page_shows_each_models_inputs_and_sends_them(
    five_models: str, browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select

    b = browser  # type: ignore[assignment]
    wait = WebDriverWait(b, 120)
    b.get(five_models + "/")
    wait.until(lambda d: len(Select(d.find_element(By.ID, "model")).options) == 5)
    model = Select(b.find_element(By.ID, "model"))
    start = tmp_path / "start.png"
    Image.new("RGB", (64, 48), "orange").save(start)
    # Image-to-image on the text model: the upload's size comes back, with its strength.
    model.select_by_visible_text("shapes_t2i")
    b.find_element(By.ID, "prompt").send_keys("a large red circle")
    b.find_element(By.ID, "init_image").send_keys(str(start))
    strength = b.find_element(By.ID, "strength")
    strength.clear()
    strength.send_keys("0.5")
    png, recorded = _generate_and_read(b, wait)
    assert png.size == (64, 48) and recorded["strength"] == 0.5 and recorded["init_image"]
    # The class model: its picker, no prompt box.
    model.select_by_visible_text("classes")
    assert not b.find_element(By.ID, "prompt").is_displayed()
    picker = Select(b.find_element(By.ID, "class"))
    assert [o.text for o in picker.options] == ["0", "1", "2", "3", "4"]
    picker.select_by_visible_text("3")
    png, recorded = _generate_and_read(b, wait)
    assert recorded["classes"] == [3]
    # The inpainting model: paint a stroke on the mask over the uploaded image.
    model.select_by_visible_text("inpainter")
    square = tmp_path / "square.png"
    Image.new("RGB", (32, 32), "blue").save(square)
    b.find_element(By.ID, "init_image").send_keys(str(square))
    canvas = b.find_element(By.ID, "mask")
    wait.until(lambda d: canvas.get_attribute("width") == "32")
    ActionChains(b).move_to_element(canvas).click_and_hold().move_by_offset(
        20, 0
    ).release().perform()
    png, recorded = _generate_and_read(b, wait)
    assert png.size == (32, 32)
    mask = Image.open(recorded["mask"]).convert("L")
    painted = int((np.asarray(mask) > 127).sum())
    assert mask.size == (32, 32) and 0 < painted < 32 * 32
    # The layout model: drag a box on the square; it takes the class typed above it.
    model.select_by_visible_text("layouts")
    b.find_element(By.ID, "box-class").send_keys("3")
    square_canvas = b.find_element(By.ID, "layout")
    ActionChains(b).move_to_element_with_offset(
        square_canvas, -60, -60
    ).click_and_hold().move_by_offset(100, 80).release().perform()
    png, recorded = _generate_and_read(b, wait)
    ((box,),) = recorded["layouts"]
    assert box["class"] == 3 and 0 <= box["box"][0] < box["box"][2] <= 1
    assert 0.3 < box["box"][2] - box["box"][0] < 0.5  # 100 of the square's 256 pixels
    # The x4 upscaler: an image to enlarge, four times its size back.
    model.select_by_visible_text("upscaler")
    low = tmp_path / "low.png"
    Image.new("RGB", (8, 8), "green").save(low)
    b.find_element(By.ID, "low_res").send_keys(str(low))
    png, recorded = _generate_and_read(b, wait)
    assert png.size == (32, 32) and recorded["low_res"]


def test_a_lora_tag_in_the_page_reaches_the_image_and_comes_back(
    tmp_path: Path, browser: object
) -> None:
    pytest.importorskip("peft", reason="the LoRA is made with peft")
    from tiny_models import strong_random_lora

    strong_random_lora(tmp_path / "loras" / "style.safetensors")
    config = ServeConfig(data=tmp_path / "serve", port=_free_port(), lora_dir=tmp_path / "loras")
    b = browser  # type: ignore[assignment]
    wait = WebDriverWait(b, 120)
    with _running(config) as base:
        b.get(base + "/")
        wait.until(lambda d: d.find_element(By.ID, "loras").is_displayed())
        assert "style" in b.find_element(By.ID, "loras").text
        prompt = "a large red circle <lora:style:0.5>"
        b.find_element(By.ID, "prompt").send_keys(prompt)
        steps = b.find_element(By.ID, "steps")
        steps.clear()
        steps.send_keys("4")
        png, recorded = _generate_and_read(b, wait)
        assert recorded["prompts"] == ["a large red circle"]
        assert recorded["loras"][0]["name"] == "style" and recorded["loras"][0]["scale"] == 0.5
        assert png.text["parameters"].startswith(prompt)
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#gallery .card")))
        b.find_element(By.ID, "prompt").clear()
        b.find_element(By.CSS_SELECTOR, "#gallery .card button.use").click()
        assert b.find_element(By.ID, "prompt").get_attribute("value") == prompt
