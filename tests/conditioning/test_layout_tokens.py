"""Layout tokens: the paper's (top-left, bottom-right, class) triples, their inverse, the JSON
format and its errors."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from ldmkit.conditioning import (
    LayoutConfig,
    LayoutEncoder,
    check_layout,
    layout_tokens,
    read_layout,
    tokens_to_layouts,
)
from ldmkit.conditioning.layout import FREQUENCIES, cell_features

CONFIG = LayoutConfig(classes=30, bins=8, max_objects=3, width=16, layers=1, heads=2)


def test_tokens_are_corner_cells_then_class_and_pad() -> None:
    layout = [(12, (0.0, 0.0, 0.25, 0.5)), (29, (0.5, 0.75, 1.0, 1.0))]
    ids = layout_tokens([layout, []], CONFIG)
    assert ids.shape == (2, 9) and ids.dtype == torch.long
    base = 1 + CONFIG.classes
    # Box 1: first cell (0, 0), last cell column 1 (x < 0.25), row 3 (y < 0.5).
    assert ids[0, :3].tolist() == [base + 0, base + 3 * 8 + 1, 1 + 12]
    assert ids[0, 3:6].tolist() == [base + 6 * 8 + 4, base + 7 * 8 + 7, 1 + 29]
    assert ids[0, 6:].tolist() == [0, 0, 0]
    assert ids[1].tolist() == [0] * 9  # the null layout
    assert int(ids.max()) < CONFIG.vocab_size


def test_boxes_on_the_grid_round_trip() -> None:
    layout = [(3, (0.125, 0.25, 0.5, 0.875)), (7, (0.0, 0.5, 1.0, 1.0))]
    assert tokens_to_layouts(layout_tokens([layout], CONFIG), CONFIG) == [layout]
    # Off-grid boxes snap outwards to the cells they touch.
    ((cls, box),) = tokens_to_layouts(
        layout_tokens([[(1, (0.13, 0.2, 0.3, 0.6))]], CONFIG), CONFIG
    )[0]
    assert cls == 1 and box == (0.125, 0.125, 0.375, 0.625)


def test_encoder_reads_tokens_and_cell_coordinates_into_context() -> None:
    table = cell_features(CONFIG)
    assert table.shape == (CONFIG.vocab_size, 4 * FREQUENCIES)
    assert table[: 1 + CONFIG.classes].abs().sum() == 0  # PAD and classes carry no coordinates
    cells = table[1 + CONFIG.classes :]
    # Neighbouring cells have closer features than distant ones (the inductive bias).
    assert (cells[0] - cells[1]).norm() < (cells[0] - cells[7]).norm()
    torch.manual_seed(0)
    encoder = LayoutEncoder(CONFIG)
    ids = layout_tokens([[(0, (0.1, 0.1, 0.4, 0.4))], [(0, (0.5, 0.1, 0.8, 0.4))], []], CONFIG)
    context = encoder(ids)
    assert context.shape == (3, CONFIG.length, CONFIG.width)
    assert not torch.allclose(context[0], context[1]) and not torch.allclose(context[0], context[2])
    assert "cell_features" not in encoder.state_dict()  # rebuilt from the config, not stored


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ([(30, (0.0, 0.0, 0.5, 0.5))], "class 30 is not in 0..29"),
        ([(True, (0.0, 0.0, 0.5, 0.5))], "class True"),
        ([(1, (0.5, 0.0, 0.5, 0.5))], "x0 < x1"),
        ([(1, (0.0, 0.0, 1.5, 0.5))], "fractions of the image"),
        ([(1, (0.0, 0.0, 0.5))], r"expected \(class, \(x0, y0, x1, y1\)\)"),
        ([(1, (0.0, 0.0, 0.1, 0.1))] * 4, r"exceed layout\.max_objects=3"),
    ],
)
def test_bad_layouts_are_clear_errors(layout: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_layout(layout, CONFIG)


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match=r"layout\.bins must be >= 1"):
        LayoutConfig(bins=0)
    with pytest.raises(ValueError, match="divisible by heads"):
        LayoutConfig(width=30, heads=4)
    assert LayoutConfig(classes=30, bins=32, max_objects=4).vocab_size == 1 + 30 + 1024


def test_json_layouts_with_ids_or_names(tmp_path: Path) -> None:
    path = tmp_path / "boxes.json"
    path.write_text(
        json.dumps(
            [{"class": 4, "box": [0.1, 0.1, 0.4, 0.5]}, {"class": "b", "box": [0.5, 0, 1, 1]}]
        )
    )
    layout = read_layout(path, {"b": 7}.__getitem__)
    assert layout == [(4, (0.1, 0.1, 0.4, 0.5)), (7, (0.5, 0, 1, 1))]
    assert check_layout(layout, CONFIG) == [(4, (0.1, 0.1, 0.4, 0.5)), (7, (0.5, 0.0, 1.0, 1.0))]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"class": 1}', "expected a JSON list"),
        ('[{"class": 1}]', "exactly the keys 'class' and 'box'"),
        ('[{"class": 1, "box": [0, 0, 1]}]', r"box must be \[x0, y0, x1, y1\]"),
        ('[{"class": "red circle", "box": [0, 0, 1, 1]}]', "give class ids"),
    ],
)
def test_bad_json_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "boxes.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_layout(path)
    with pytest.raises(ValueError, match="cannot read the layout"):
        read_layout(tmp_path / "missing.json")


def test_every_token_of_an_object_carries_its_box() -> None:
    torch.manual_seed(0)
    encoder = LayoutEncoder(dataclasses.replace(CONFIG, layers=1))
    ids = layout_tokens([[(0, (0.1, 0.1, 0.4, 0.4))], [(0, (0.5, 0.5, 0.9, 0.9))]], CONFIG)
    cells = encoder.cell_features[ids]
    corners = cells.view(2, CONFIG.max_objects, 3, -1)[:, :, :2].flatten(2)
    box = encoder.box(corners)  # (2, slots, width)
    # The class tokens (same class, different boxes) differ by the box term before any layer.
    embedded = encoder.token_embedding(ids)
    assert torch.equal(embedded[0, 2], embedded[1, 2])
    assert not torch.allclose(box[0, 0], box[1, 0])
    # Empty slots have zero corner features; forward masks their box term (the bias) out too.
    assert corners[:, 1:].abs().sum() == 0
    with pytest.raises(ValueError, match="3 tokens per object"):
        encoder(ids[:, :4])
