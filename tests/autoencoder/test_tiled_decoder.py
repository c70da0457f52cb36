"""Tiled decoding: halos make tiles equal to the whole decode, shared group-norm statistics make
them agree with each other, memory is bounded by the tile, and the shipped autoencoder's tiled
decode stays close to its whole one."""

import math

import pytest
import torch
import torch.nn.functional as F

from ldmkit.assets import SHAPES_AUTOENCODER
from ldmkit.autoencoder import Autoencoder, AutoencoderConfig
from ldmkit.autoencoder import tiled_decoder as td
from ldmkit.checkpoint import load_autoencoder
from ldmkit.data.shapes import ShapesConfig, ShapesDataset


def _decoder(groups: int, patch: int = 1) -> Autoencoder:
    torch.manual_seed(0)
    config = AutoencoderConfig(
        model_channels=16, channel_mult=(1, 2, 4), num_res_blocks=1, norm_groups=groups, patch=patch
    )
    return Autoencoder(config).eval()


@pytest.mark.parametrize("patch", [1, 2])
def test_without_group_norms_tiles_equal_the_whole_decode(patch: int) -> None:
    """Every convolution's reach is covered by the halo: odd sizes, tiles of unequal sides,
    tiles on and off the border, two samples."""
    model = _decoder(groups=0, patch=patch)
    z = torch.randn(2, 3, 37, 29)
    with torch.no_grad():
        torch.testing.assert_close(model.decode(z, tile=11), model.decode(z), atol=1e-5, rtol=0)


def test_with_the_whole_decodes_statistics_tiles_equal_it() -> None:
    """The only approximation is the statistics: given the whole decode's, tiles reproduce it,
    and afterwards the group norms are plain again."""
    model = _decoder(groups=8)
    decoder, z = model.decoder, torch.randn(1, 3, 30, 26)
    with torch.no_grad():
        whole = decoder(z)
        h = td._whole_part(decoder, z)
        segments, norms = td._segments(decoder), td._group_norms(decoder)
        moments = td._Moments()
        with td._recording(norms, moments):
            x = h
            for segment in segments:
                x = segment.run(x)
        torch.testing.assert_close(x, whole)
        tiles = torch.empty_like(whole)
        with td._fixed(norms, moments.statistics()):
            for rows in td.tile_bounds(30, 8):
                for cols in td.tile_bounds(26, 8):
                    part = td._run_tile(segments, h, rows, cols)
                    tiles[..., rows[0] * 4 : rows[1] * 4, cols[0] * 4 : cols[1] * 4] = part
        torch.testing.assert_close(tiles, whole, atol=1e-5, rtol=0)
        assert not any(hasattr(n, "fixed_statistics") or "forward" in vars(n) for n in norms)
        torch.testing.assert_close(decoder(z), whole)


def test_a_latent_within_one_tile_is_decoded_whole() -> None:
    model = _decoder(groups=8)
    z = torch.randn(1, 3, 12, 9)
    with torch.no_grad():
        assert torch.equal(model.decode(z, tile=12), model.decode(z))
    with pytest.raises(ValueError, match="tile must be >= 1"):
        td.decode_in_tiles(model.decoder, z, 0)


def test_no_full_resolution_tensor_is_larger_than_a_tile_with_its_halo() -> None:
    """What bounds the memory: above latent resolution every activation is one tile's."""
    model = _decoder(groups=8)
    z = torch.randn(1, 3, 48, 40)
    tile, halo = 10, math.ceil(sum(s.reach for s in td._segments(model.decoder)))
    largest = [0]

    def watch(module: torch.nn.Module, args: object, out: torch.Tensor) -> None:
        if out.shape[-1] > z.shape[-1]:  # above latent resolution
            largest[0] = max(largest[0], out.shape[-2] * out.shape[-1])

    handles = [m.register_forward_hook(watch) for m in model.decoder.modules()]
    with torch.no_grad():
        model.decode(z, tile=tile)
    for handle in handles:
        handle.remove()
    assert 0 < largest[0] <= ((tile + 2 * halo) * 4) ** 2


def test_the_shipped_autoencoder_decodes_tiles_close_to_whole() -> None:
    """41 dB at 1024 px (docs/results/megapixel.md); here a 384 px mosaic in 3x3 tiles."""
    model = load_autoencoder(SHAPES_AUTOENCODER).eval()
    data = ShapesDataset(ShapesConfig(resolution=128), size=9, seed=1)
    scenes = torch.stack([data[i]["image"] for i in range(9)])
    image = scenes.reshape(3, 3, 3, 128, 128).permute(2, 0, 3, 1, 4).reshape(1, 3, 384, 384)
    with torch.no_grad():
        z = model.to_latent(image.roll((50, 50), (-2, -1)))
        whole, tiled = model.from_latent(z).clamp(-1, 1), model.from_latent(z, 32).clamp(-1, 1)
    psnr = 10 * math.log10(4 / F.mse_loss(tiled, whole).item())
    assert psnr > 38, psnr


def test_the_statistics_pass_runs_in_bf16_where_native_and_stays_close() -> None:
    """The estimate's convolutions run in bfloat16 where the device computes it natively (about
    half the time of float32 on an AVX-512 BF16 CPU); the decode itself keeps float32, and the
    tiles stay as close to the whole decode as with float32 statistics."""
    from ldmkit.precision import native_precision

    cpu = torch.device("cpu")
    assert td.estimate_dtype(cpu) == (torch.bfloat16 if native_precision(cpu, "bf16") else None)
    model = load_autoencoder(SHAPES_AUTOENCODER).eval()
    data = ShapesDataset(ShapesConfig(resolution=128), size=4, seed=2)
    scenes = torch.stack([data[i]["image"] for i in range(4)])
    image = scenes.reshape(2, 2, 3, 128, 128).permute(2, 0, 3, 1, 4).reshape(1, 3, 256, 256)
    seen: list[torch.dtype] = []
    conv = model.decoder.conv_out
    handle = conv.register_forward_hook(lambda m, args, out: seen.append(out.dtype))
    with torch.no_grad():
        z = model.to_latent(image)
        whole = model.decoder(z)
        seen.clear()
        low = td.decode_in_tiles(model.decoder, z, 32, torch.bfloat16)
        assert torch.bfloat16 in seen and low.dtype == torch.float32  # estimate low, decode not
        full = td.decode_in_tiles(model.decoder, z, 32, None)
    handle.remove()

    def psnr(x: torch.Tensor) -> float:
        return 10 * math.log10(4 / F.mse_loss(x.clamp(-1, 1), whole.clamp(-1, 1)).item())

    assert psnr(low) > psnr(full) - 0.5, (psnr(low), psnr(full))
