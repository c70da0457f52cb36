"""The shared request: its checks name the field, it survives JSON, it is checked against a
model before any work, and a negative prompt replaces the empty prompt guidance contrasts with."""

import json
from pathlib import Path

import pytest
import torch
from tiny_models import tiny_ldm, tiny_spatial_ldm

import ldmkit
from ldmkit.assets import SHAPES_TEXT_TO_IMAGE
from ldmkit.generation import GenerationRequest, check_request, generate
from ldmkit.image_parameters import read_parameters, webui_text
from ldmkit.inputs import InputError
from ldmkit.pipeline import LatentDiffusion
from ldmkit.samplers import SamplingOptions, sampler_from_name, webui_name


@pytest.fixture(scope="module")
def model() -> LatentDiffusion:
    return ldmkit.load(SHAPES_TEXT_TO_IMAGE)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"count": 0}, "count"),
        ({"strength": 1.5}, "strength"),
        ({"width": -8}, "width"),
        ({"prompts": "a cat"}, "prompts"),
        ({"prompts": [""]}, "prompts"),
        ({"classes": [-1]}, "classes"),
        ({"mask": "m.png"}, "mask"),
        ({"steps": 0}, "steps"),
        ({"sampler": "warp"}, "sampler"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_every_bad_field_is_named(values: dict, field: str) -> None:
    with pytest.raises(InputError) as error:
        GenerationRequest.from_dict(values)
    assert error.value.field == field


def test_a_request_survives_json_and_ignores_other_records_when_asked() -> None:
    request = GenerationRequest(
        prompts=("a red circle",),
        negative_prompt="a blue star",
        layouts=(({"class": 3, "box": [0, 0, 0.5, 0.5]},),),
        width=96,
        count=3,
        options=SamplingOptions("euler-a", steps=7, seed=4, karras=True),
    )
    again = GenerationRequest.from_dict(json.loads(json.dumps(request.to_dict())))
    assert again == request
    recorded = {**request.to_dict(), "checkpoint": "x", "index": 2}
    assert GenerationRequest.from_dict(recorded, strict=False) == request


def test_requests_are_checked_against_the_model(model: LatentDiffusion) -> None:
    for values, field in (
        ({}, "prompts"),
        ({"prompts": ["a red circle"], "classes": [1]}, "classes"),
        ({"prompts": ["a red circle"], "width": 30}, "width"),
        ({"prompts": ["a red circle"], "low_res": "x.png"}, "low_res"),
        (
            {"prompts": ["a red circle"], "layouts": [[{"class": 1, "box": [0, 0, 1, 1]}]]},
            "layouts",
        ),
    ):
        with pytest.raises(InputError) as error:
            check_request(model, GenerationRequest.from_dict(values))
        assert error.value.field == field, values


def test_a_negative_prompt_is_what_guidance_steers_from(model: LatentDiffusion) -> None:
    prompt, negative = ["a large red circle"] * 2, ["a small blue star"] * 2
    cond, uncond = model.conditions(2, {"prompts": prompt}, 3.0, {"prompts": negative})
    as_prompt, _ = model.conditions(2, {"prompts": negative}, 3.0)
    torch.testing.assert_close(uncond["context"], as_prompt["context"])
    plain_cond, plain_uncond = model.conditions(2, {"prompts": prompt}, 3.0)
    torch.testing.assert_close(cond["context"], plain_cond["context"])
    assert not torch.allclose(uncond["context"], plain_uncond["context"])
    with pytest.raises(ValueError, match="guidance is 1"):
        model.conditions(2, {"prompts": prompt}, 1.0, {"prompts": negative})
    base = {"prompts": prompt[:1], "steps": 3, "seed": 1}
    images = [
        generate(model, GenerationRequest.from_dict(values))
        for values in (
            base,
            {**base, "negative_prompt": negative[0]},
            {**base, "negative_prompt": ""},
        )
    ]
    assert not torch.equal(images[0], images[1])
    assert torch.equal(images[0], images[2])  # "" is the plain empty prompt


def test_webui_text_reads_back_as_the_web_uis_write_it(tmp_path: object) -> None:
    from PIL import Image

    from ldmkit.image_parameters import png_info

    text = webui_text("a cat", "blurry", {"Steps": 20, "Sampler": webui_name("dpm++2m", True)})
    assert text == "a cat\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M Karras"
    assert sampler_from_name("DPM++ 2M Karras") == ("dpm++2m", True)
    path = tmp_path / "x.png"  # type: ignore[operator]
    Image.new("RGB", (8, 8)).save(path, pnginfo=png_info({"seed": 1}, text))
    assert read_parameters(path) == ({"seed": 1}, text)
    Image.new("RGB", (8, 8)).save(tmp_path / "bare.png")  # type: ignore[operator]
    with pytest.raises(InputError, match="carries no generation parameters"):
        read_parameters(tmp_path / "bare.png")  # type: ignore[operator]


def test_width_and_height_give_any_aspect(model: LatentDiffusion) -> None:
    request = GenerationRequest.from_dict(
        {"prompts": ["a red circle"], "width": 96, "height": 48, "steps": 2, "count": 2}
    )
    assert generate(model, request).shape == (2, 3, 48, 96)


def _png(path: Path, size: tuple[int, int], colour: str = "grey", box: bool = False) -> str:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, colour)
    if box:  # a white square in the middle: the part to repaint
        w, h = size
        ImageDraw.Draw(image).rectangle((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill="white")
    image.save(path)
    return str(path)


def test_spatial_and_class_models_take_their_fields(tmp_path: Path) -> None:
    upscaler = tiny_spatial_ldm("super_resolution")
    low = _png(tmp_path / "low.png", (8, 8), "red")
    request = GenerationRequest.from_dict({"low_res": low, "steps": 2, "count": 2})
    assert generate(upscaler, request).shape == (2, 3, 32, 32)  # x4
    with pytest.raises(InputError) as error:
        check_request(upscaler, GenerationRequest.from_dict({"steps": 2}))
    assert error.value.field == "low_res"
    inpainter = tiny_spatial_ldm("inpaint")
    image, mask = (
        _png(tmp_path / "i.png", (32, 32), "blue"),
        _png(tmp_path / "m.png", (32, 32), "black", box=True),
    )
    request = GenerationRequest.from_dict({"init_image": image, "mask": mask, "steps": 2})
    out = generate(inpainter, request)
    assert out.shape == (1, 3, 32, 32)
    blue = torch.tensor([-1.0, -1.0, 1.0])[:, None]  # known pixels are pasted back exactly
    torch.testing.assert_close(out[0, :, 0, :], blue.expand(3, 32), atol=1e-2, rtol=0)
    assert not torch.allclose(out[0, :, 16, 16], blue[:, 0], atol=0.1)
    classes = tiny_ldm(num_classes=5)
    request = GenerationRequest.from_dict({"classes": [3, 1], "steps": 2, "count": 3})
    assert generate(classes, request).shape == (3, 3, 16, 16)  # latent 8, f=2
    with pytest.raises(InputError) as error:
        check_request(classes, GenerationRequest.from_dict({"classes": [5]}))
    assert error.value.field == "classes"
