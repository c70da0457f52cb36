"""Images people look at: tensors in [-1, 1] to uint8 arrays, grids (plain or one labelled row
per condition) and layout boxes drawn over samples."""

import math

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return x.permute(0, 2, 3, 1).numpy()


def image_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> Image.Image:
    """Tile a batch (B, C, H, W) in [-1, 1] into one RGB picture, `nrow` images per row."""
    arrays = to_uint8(images)
    b, h, w, _ = arrays.shape
    nrow = nrow or math.ceil(math.sqrt(b))
    rows = math.ceil(b / nrow)
    canvas = np.full(
        (rows * (h + padding) + padding, nrow * (w + padding) + padding, 3), 255, np.uint8
    )
    for i, image in enumerate(arrays):
        r, c = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + c * (w + padding)
        canvas[y : y + h, x : x + w] = image
    return Image.fromarray(canvas)


def labelled_grid(
    images: torch.Tensor, nrow: int, row_labels: list[str], padding: int = 2, blocks: int = 1
) -> Image.Image:
    """`image_grid` with a text label left of each row (e.g. the class every row was asked for).

    `blocks` > 1 splits the rows into that many side-by-side panels, for a less tall picture.
    """
    from PIL import ImageDraw, ImageFont

    rows = len(row_labels)
    if images.shape[0] != rows * nrow:
        raise ValueError(f"{images.shape[0]} images do not fill {rows} rows of {nrow}")
    per_block = math.ceil(rows / blocks)
    if blocks > 1:
        panels = [
            labelled_grid(
                images[start * nrow : (start + per_block) * nrow],
                nrow,
                row_labels[start : start + per_block],
                padding,
            )
            for start in range(0, rows, per_block)
        ]
        canvas = Image.new("RGB", (sum(p.width for p in panels), panels[0].height), "white")
        x = 0
        for panel in panels:
            canvas.paste(panel, (x, 0))
            x += panel.width
        return canvas
    grid = image_grid(images, nrow, padding)
    h = images.shape[-2]
    font = ImageFont.load_default()
    draw = ImageDraw.Draw(grid)
    width = max(int(draw.textlength(label, font=font)) for label in row_labels) + 8
    canvas = Image.new("RGB", (grid.width + width, grid.height), "white")
    canvas.paste(grid, (width, 0))
    draw = ImageDraw.Draw(canvas)
    for r, label in enumerate(row_labels):
        y = padding + r * (h + padding) + h // 2
        draw.text((4, y), label, fill="black", font=font, anchor="lm")
    return canvas


def draw_layouts(
    images: torch.Tensor, layouts: list[list[tuple[int, tuple[float, float, float, float]]]]
) -> torch.Tensor:
    """The images (B, 3, H, W) in [-1, 1] with each layout's boxes (fractions of the image)
    outlined, alternately white and black so they show on any background."""
    from PIL import ImageDraw

    out = []
    for array, layout in zip(to_uint8(images), layouts, strict=True):
        picture = Image.fromarray(array)
        draw = ImageDraw.Draw(picture)
        h, w = array.shape[:2]
        for i, (_, (x0, y0, x1, y1)) in enumerate(layout):
            colour = "white" if i % 2 == 0 else "black"
            right, bottom = max(x0 * w, x1 * w - 1), max(y0 * h, y1 * h - 1)  # >= 1 pixel
            draw.rectangle([x0 * w, y0 * h, right, bottom], outline=colour)
        out.append(torch.from_numpy(np.array(picture)).permute(2, 0, 1))
    return torch.stack(out).float().div(127.5).sub(1).to(images.device)
