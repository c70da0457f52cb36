"""A captioned emoji image set rendered from the Debian package ``fonts-noto-color-emoji``.

Noto Color Emoji is a bitmap (CBDT) font: FreeType, and so Pillow, renders it only at its one
strike size, 109 px, and only with ``embedded_color=True``. Each single-code-point emoji the font
has is drawn on transparency, cropped to its glyph, padded to a square, composited over white and
resized; the caption is its lower-cased Unicode name (``"grinning face"``). The output folder
(PNGs + ``metadata.jsonl``) is read by :class:`ldmkit.data.image_folder.ImageFolderDataset`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

DEFAULT_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
INSTALL_HINT = "install it with `apt-get install fonts-noto-color-emoji`"
FONT_SIZE = 109  # the only bitmap strike in NotoColorEmoji.ttf
METADATA_FILE = "metadata.jsonl"

# Blocks and single code points that hold emoji (Unicode emoji-data.txt, Emoji_Presentation and
# Extended_Pictographic); code points the font lacks render empty and are dropped.
EMOJI_RANGES: tuple[tuple[int, int], ...] = (
    (0x00A9, 0x00A9),  # copyright sign
    (0x00AE, 0x00AE),  # registered sign
    (0x203C, 0x203C),
    (0x2049, 0x2049),
    (0x2122, 0x2122),
    (0x2139, 0x2139),
    (0x2190, 0x21FF),  # arrows
    (0x2300, 0x23FF),  # miscellaneous technical (watch, hourglass, ...)
    (0x24C2, 0x24C2),
    (0x25A0, 0x25FF),  # geometric shapes
    (0x2600, 0x26FF),  # miscellaneous symbols
    (0x2700, 0x27BF),  # dingbats
    (0x2900, 0x297F),  # supplemental arrows-B
    (0x2B00, 0x2BFF),  # miscellaneous symbols and arrows
    (0x3030, 0x3030),
    (0x303D, 0x303D),
    (0x3297, 0x3297),
    (0x3299, 0x3299),
    (0x1F000, 0x1FAFF),  # mahjong .. symbols and pictographs extended-A
)
# Code points that are only parts of sequences (flags, skin tones, hair styles), not emoji alone.
EXCLUDED_NAME_PREFIXES: tuple[str, ...] = (
    "REGIONAL INDICATOR",
    "EMOJI MODIFIER",
    "EMOJI COMPONENT",
)

logger = logging.getLogger(__name__)


def emoji_codepoints() -> Iterator[int]:
    """Candidate emoji code points, ascending (the font decides which of them exist)."""
    for start, end in EMOJI_RANGES:
        yield from range(start, end + 1)


def emoji_caption(codepoint: int) -> str | None:
    """Lower-cased Unicode name of a stand-alone emoji, or None (unnamed or only a component)."""
    name = unicodedata.name(chr(codepoint), None)
    if name is None or name.startswith(EXCLUDED_NAME_PREFIXES):
        return None
    return name.lower()


def load_emoji_font(path: str | Path = DEFAULT_FONT) -> ImageFont.FreeTypeFont:
    """Open Noto Color Emoji at its bitmap size; a clear error names the package if it is absent."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"emoji font {path} not found; {INSTALL_HINT}.")
    try:
        return ImageFont.truetype(str(path), FONT_SIZE)
    except OSError as err:
        raise ValueError(
            f"cannot open {path} at {FONT_SIZE} px ({err}); pass a colour bitmap emoji font such "
            f"as NotoColorEmoji.ttf ({INSTALL_HINT})."
        ) from err


def _has_glyph(font: ImageFont.FreeTypeFont, char: str) -> bool:
    """Whether the font maps `char` to a glyph (a missing one has an empty box in this font)."""
    left, top, right, bottom = font.getbbox(char)
    return right > left and bottom > top


def render_emoji(char: str, font: ImageFont.FreeTypeFont, resolution: int) -> Image.Image | None:
    """One emoji as an RGB square on white, cropped to its glyph; None if the font lacks it."""
    if not _has_glyph(font, char):
        return None
    right, bottom = (int(v) for v in font.getbbox(char)[2:])
    margin = 8
    canvas = Image.new("RGBA", (right + 2 * margin, bottom + 2 * margin), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((margin, margin), char, font=font, embedded_color=True)
    glyph_box = canvas.getchannel("A").getbbox()
    if glyph_box is None:
        return None  # rendered nothing: no colour glyph for this code point
    glyph = canvas.crop(glyph_box)
    side = max(glyph.size)
    square = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    offset = ((side - glyph.width) // 2, (side - glyph.height) // 2)
    square.alpha_composite(glyph, dest=offset)
    # Composite before resizing so the edges blend into white, not into transparent black.
    rgb = square.convert("RGB")
    if side != resolution:
        rgb = rgb.resize((resolution, resolution), resample=Image.Resampling.LANCZOS)
    return rgb


def _check_out_dir(out_dir: Path) -> None:
    """Refuse to replace a folder that is not empty and not an earlier emoji set."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir} is a file; pass a folder for the emoji set.")
    if any(out_dir.iterdir()) and not (out_dir / METADATA_FILE).is_file():
        raise FileExistsError(
            f"{out_dir} exists, is not empty and holds no {METADATA_FILE}, so it is not an emoji "
            "set that may be replaced; pass a new folder or empty this one."
        )


def prepare_emoji(
    out_dir: str | Path,
    resolution: int = 64,
    font: str | Path = DEFAULT_FONT,
    limit: int | None = None,
) -> Path:
    """Render the font's one-code-point emoji as PNGs + metadata.jsonl in `out_dir`; returns it."""
    out_dir = Path(out_dir)
    if not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive int, got {resolution!r}.")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive int or None, got {limit!r}.")
    emoji_font = load_emoji_font(font)
    _check_out_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    # Build in a hidden sibling folder, then swap it in, so a crash leaves no half-written set.
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        count, unnamed = _render_all(staging, emoji_font, resolution, limit)
        if count == 0:
            raise ValueError(f"{font} rendered no emoji; pass NotoColorEmoji.ttf ({INSTALL_HINT}).")
        _swap_in(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info(
        "rendered %d emoji at %d px into %s in %.1f s (%d glyphs skipped: no Unicode name)",
        count,
        resolution,
        out_dir,
        time.perf_counter() - started,
        unnamed,
    )
    return out_dir


def _render_all(
    folder: Path, font: ImageFont.FreeTypeFont, resolution: int, limit: int | None
) -> tuple[int, int]:
    """Write PNGs and metadata.jsonl into `folder`; returns (emoji written, unnamed glyphs)."""
    count = unnamed = 0
    with (folder / METADATA_FILE).open("w", encoding="utf-8") as metadata:
        for codepoint in emoji_codepoints():
            if limit is not None and count >= limit:
                break
            name = unicodedata.name(chr(codepoint), None)
            caption = emoji_caption(codepoint)
            if caption is None:
                if name is None and _has_glyph(font, chr(codepoint)):
                    unnamed += 1  # newer than this Python's Unicode database
                continue
            image = render_emoji(chr(codepoint), font, resolution)
            if image is None:
                continue
            file_name = f"emoji_u{codepoint:04x}.png"
            image.save(folder / file_name, format="PNG", optimize=False)
            metadata.write(json.dumps({"file_name": file_name, "text": caption}) + "\n")
            count += 1
    return count, unnamed


def _swap_in(staging: Path, out_dir: Path) -> None:
    """Move the finished `staging` folder to `out_dir`, replacing an earlier set if present."""
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    retired = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old-"))
    os.replace(out_dir, retired / "set")
    os.replace(staging, out_dir)
    shutil.rmtree(retired, ignore_errors=True)
