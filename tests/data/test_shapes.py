"""Tests for the procedural shapes dataset: determinism, ground truth, config, dataset items."""

from __future__ import annotations

import colorsys
import re

import numpy as np
import pytest
import torch

from ldmkit.data.shapes import (
    COLOR_NAMES,
    COLORS,
    HELDOUT_SEED,
    NUM_CLASSES,
    SHAPE_KINDS,
    SIZES,
    TRAIN_SEED,
    ShapeObject,
    ShapesConfig,
    ShapesDataset,
    ShapesSample,
    caption_of,
    class_name,
    relation,
    render_shapes,
)
from ldmkit.data.shapes_render import BACKGROUND_KINDS, make_background

SLACK = 1.0  # pixels of slack when comparing masks with boxes


def _samples(config: ShapesConfig, count: int, seed: int = 0) -> list[ShapesSample]:
    return [render_shapes(config, seed, i) for i in range(count)]


def _inside(ys: np.ndarray, xs: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Which pixels (rows ys, columns xs) lie inside `box` with SLACK."""
    x0, y0, x1, y1 = box
    return (xs >= x0 - SLACK) & (xs + 1 <= x1 + SLACK) & (ys >= y0 - SLACK) & (ys + 1 <= y1 + SLACK)


def test_constants_and_class_names() -> None:
    assert len(SHAPE_KINDS) == 5 and len(COLOR_NAMES) == 6 and NUM_CLASSES == 30
    assert SIZES == ("small", "medium", "large")
    assert set(COLORS) == set(COLOR_NAMES)
    assert len(set(COLORS.values())) == 6
    assert (TRAIN_SEED, HELDOUT_SEED) == (0, 1)
    assert class_name(0) == "red circle"
    assert class_name(1 * 6 + 2) == "blue square"
    assert class_name(29) == "orange ring"
    for bad in (-1, 30, True):
        with pytest.raises(ValueError, match="class_id"):
            class_name(bad)


def test_deterministic_from_seed_and_index() -> None:
    config = ShapesConfig(resolution=48)
    a, b = render_shapes(config, 7, 3), render_shapes(config, 7, 3)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.semantic, b.semantic)
    np.testing.assert_array_equal(a.instance_masks, b.instance_masks)
    assert a.caption == b.caption and a.objects == b.objects and a.label == b.label
    assert not np.array_equal(a.image, render_shapes(config, 7, 4).image)
    assert not np.array_equal(a.image, render_shapes(config, 8, 3).image)


def test_scene_does_not_depend_on_resolution() -> None:
    small, large = ShapesConfig(resolution=32), ShapesConfig(resolution=128)
    for index in range(8):
        a, b = render_shapes(small, 0, index), render_shapes(large, 0, index)
        assert a.caption == b.caption
        for (ca, box_a), (cb, box_b) in zip(a.layout, b.layout, strict=True):
            assert ca == cb
            np.testing.assert_allclose(box_a, box_b, atol=2 / 32)


@pytest.mark.parametrize("resolution", [32, 64])
def test_ground_truth_is_consistent(resolution: int) -> None:
    config = ShapesConfig(resolution=resolution)
    for sample in _samples(config, 40):
        n = len(sample.objects)
        assert 1 <= n <= 4 and sample.label is None
        assert sample.image.shape == (resolution, resolution, 3)
        assert sample.image.dtype == np.uint8
        assert sample.semantic.shape == (resolution, resolution)
        assert sample.semantic.dtype == np.int64
        assert sample.instance_masks.shape == (n, resolution, resolution)
        assert sample.instance_masks.dtype == np.bool_
        # the semantic map is non-zero exactly where some object covers the pixel
        np.testing.assert_array_equal(sample.semantic > 0, sample.instance_masks.any(axis=0))
        for i, (obj, (class_id, norm_box)) in enumerate(
            zip(sample.objects, sample.layout, strict=True)
        ):
            assert (
                obj.class_id
                == class_id
                == SHAPE_KINDS.index(obj.kind) * 6 + COLOR_NAMES.index(obj.color)
            )
            assert f"{obj.size} {obj.color} {obj.kind}" in sample.caption
            np.testing.assert_allclose(np.asarray(norm_box) * resolution, obj.box, atol=1e-9)
            assert all(0.0 <= v <= 1.0 for v in norm_box)
            ys, xs = np.nonzero(sample.instance_masks[i])
            assert ys.size > 0 and _inside(ys, xs, obj.box).all()
            visible = (sample.semantic == 1 + obj.class_id) & sample.instance_masks[i]
            assert visible.any(), f"object {i} of '{sample.caption}' is fully hidden"
        for value in np.unique(sample.semantic[sample.semantic > 0]):
            boxes = [o.box for o in sample.objects if o.class_id == value - 1]
            assert boxes, f"semantic id {value} matches no object"
            ys, xs = np.nonzero(sample.semantic == value)
            assert np.logical_or.reduce([_inside(ys, xs, box) for box in boxes]).all()


def test_object_colour_fills_its_interior() -> None:
    sample = render_shapes(ShapesConfig(resolution=64, single_object=True), 0, 5)
    obj = sample.objects[0]
    # pixels fully inside the shape (not on an antialiased edge) carry the exact named colour
    interior = sample.instance_masks[0].copy()
    for axis in (0, 1):
        for shift in (-1, 1):
            interior &= np.roll(sample.instance_masks[0], shift, axis=axis)
    assert interior.any()
    np.testing.assert_array_equal(
        sample.image[interior], np.broadcast_to(COLORS[obj.color], (interior.sum(), 3))
    )


def test_captions_and_relations() -> None:
    def obj(
        kind: str, color: str, size: str, box: tuple[float, float, float, float]
    ) -> ShapeObject:
        return ShapeObject(
            kind, color, size, SHAPE_KINDS.index(kind) * 6 + COLOR_NAMES.index(color), box
        )

    red = obj("circle", "red", "small", (10, 0, 20, 10))
    blue = obj("square", "blue", "large", (5, 30, 35, 60))
    green = obj("star", "green", "medium", (50, 30, 60, 40))
    assert caption_of([green]) == "a medium green star"
    assert caption_of([red, blue]) == "a small red circle above a large blue square"
    assert relation(blue, red) == "below"
    assert relation(blue, green) == "left of" and relation(green, blue) == "right of"
    assert caption_of([red, blue, green]) == (
        "a small red circle above a large blue square, which is left of a medium green star"
    )
    with pytest.raises(ValueError):
        caption_of([])


def test_caption_shape_matches_object_count() -> None:
    word = f"({'|'.join(SIZES)}) ({'|'.join(COLOR_NAMES)}) ({'|'.join(SHAPE_KINDS)})"
    rel = r"(left of|right of|above|below)"
    for sample in _samples(ShapesConfig(resolution=32), 20, seed=2):
        n = len(sample.objects)
        pattern = (
            rf"a {word}"
            + (rf" {rel} a {word}" if n > 1 else "")
            + rf"(, which is {rel} a {word})" * max(0, n - 2)
        )
        assert re.fullmatch(pattern, sample.caption), sample.caption


def test_single_object_mode_sets_label() -> None:
    config = ShapesConfig(resolution=32, single_object=True, min_objects=2, max_objects=3)
    for sample in _samples(config, 20):
        assert len(sample.objects) == 1
        assert sample.label == sample.objects[0].class_id
        assert sample.caption == f"a {sample.objects[0].size} {class_name(sample.label)}"


def test_all_classes_sizes_and_backgrounds_reachable() -> None:
    seen_classes: set[int] = set()
    seen_sizes: set[str] = set()
    seen_backgrounds: set[str] = set()
    for sample in _samples(ShapesConfig(resolution=32, supersample=2), 150):
        seen_classes.update(o.class_id for o in sample.objects)
        seen_sizes.update(o.size for o in sample.objects)
        seen_backgrounds.add(sample.background)
    assert seen_classes == set(range(NUM_CLASSES))
    assert seen_sizes == set(SIZES)
    assert seen_backgrounds == set(BACKGROUND_KINDS)


def test_object_counts_follow_config() -> None:
    config = ShapesConfig(resolution=32, min_objects=4, max_objects=4)
    assert all(len(s.objects) == 4 for s in _samples(config, 10))
    config = ShapesConfig(resolution=32, min_objects=2, max_objects=3)
    assert {len(s.objects) for s in _samples(config, 30)} == {2, 3}


@pytest.mark.parametrize("kind", BACKGROUND_KINDS)
def test_backgrounds_are_muted_and_never_object_colours(kind: str) -> None:
    object_saturation = min(colorsys.rgb_to_hsv(*(np.asarray(c) / 255))[1] for c in COLORS.values())
    assert object_saturation > 0.7
    for i in range(10):
        background = make_background(kind, 32, np.random.default_rng(i))
        assert background.shape == (32, 32, 3)
        chroma = background.max(axis=-1) - background.min(axis=-1)
        assert chroma.max() < 0.25 * 255  # greys and faint tints only
        if kind == "plain":
            assert np.all(background == background[0, 0])
        else:
            assert np.ptp(background) > 2.0
    config = ShapesConfig(resolution=32, backgrounds=(kind,))
    sample = render_shapes(config, 0, 0)
    assert sample.image.shape == (32, 32, 3) and sample.background == kind


def test_edges_are_antialiased() -> None:
    sample = render_shapes(ShapesConfig(resolution=64, backgrounds=("plain",)), 0, 1)
    colors = {tuple(c) for c in sample.image.reshape(-1, 3)}
    # background + object colours + blended edge pixels between them
    assert len(colors) > 1 + len(sample.objects) + 10


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"resolution": 31}, "resolution"),
        ({"resolution": 513}, "resolution"),
        ({"resolution": 64.0}, "resolution"),
        ({"min_objects": 0}, "min_objects"),
        ({"min_objects": 3, "max_objects": 2}, "max_objects"),
        ({"max_objects": 5}, "max_objects"),
        ({"supersample": 0}, "supersample"),
        ({"single_object": 1}, "single_object"),
        ({"backgrounds": ()}, "backgrounds"),
        ({"backgrounds": ("plain", "stripes")}, "backgrounds"),
        ({"backgrounds": "plain"}, "backgrounds"),
    ],
)
def test_config_validation_names_field_and_range(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"ShapesConfig\.{field}"):
        ShapesConfig(**kwargs)


def test_config_accepts_bounds_and_list_backgrounds() -> None:
    assert ShapesConfig(resolution=32).resolution == 32
    assert ShapesConfig(resolution=512).resolution == 512
    assert ShapesConfig(backgrounds=["noise"]).backgrounds == ("noise",)  # type: ignore[arg-type]


def test_render_rejects_negative_seed_and_index() -> None:
    with pytest.raises(ValueError, match="seed"):
        render_shapes(ShapesConfig(), -1, 0)
    with pytest.raises(ValueError, match="index"):
        render_shapes(ShapesConfig(), 0, -1)


def test_dataset_items() -> None:
    dataset = ShapesDataset(ShapesConfig(resolution=32), size=5, seed=TRAIN_SEED)
    assert len(dataset) == 5
    item = dataset[2]
    assert set(item) == {"image", "caption", "label", "index", "semantic", "layout"}
    assert item["semantic"].dtype == torch.uint8
    assert item["layout"] == dataset.sample(2).layout and len(item["layout"]) >= 1
    assert torch.equal(item["semantic"].long(), torch.from_numpy(dataset.sample(2).semantic))
    image = item["image"]
    assert isinstance(image, torch.Tensor) and image.dtype == torch.float32
    assert image.shape == (3, 32, 32)
    assert image.min() >= -1.0 and image.max() <= 1.0
    assert item["label"] == -1 and item["index"] == 2
    assert item["caption"] == dataset.sample(2).caption
    expected = torch.from_numpy(dataset.sample(2).image).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(image, expected)
    with pytest.raises(IndexError):
        dataset[5]
    heldout = ShapesDataset(ShapesConfig(resolution=32), size=5, seed=HELDOUT_SEED)
    assert not torch.equal(heldout[2]["image"], image)


def test_dataset_single_object_label_and_batching() -> None:
    dataset = ShapesDataset(ShapesConfig(resolution=32, single_object=True), size=4)
    labels = [dataset[i]["label"] for i in range(4)]
    assert all(isinstance(x, int) and 0 <= x < NUM_CLASSES for x in labels)
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch["image"].shape == (4, 3, 32, 32)
    assert batch["label"].tolist() == labels
