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
        segments, norms = td._segments(decoder), td._group_norms([(td._segments(decoder), 0)])
        moments = td._Moments()
        with td._recording(norms, moments):
            x = h
            for segment in segments:
                x = segment.run(x)
        torch.testing.assert_close(x, whole)
        tiles = torch.empty_like(whole)
        with td._fixed(norms, moments.statistics()):
            for core in td._within((0, 30, 0, 26), 8):
                part, _ = td._run_region(segments, h, (0, 30, 0, 26), 1, core, (30, 26))
                tiles[..., core[0] * 4 : core[1] * 4, core[2] * 4 : core[3] * 4] = part
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


@pytest.mark.parametrize("layout", ["kl-f4", "sd-f8"])
def test_no_full_resolution_tensor_is_larger_than_a_tile_with_its_halo(layout: str) -> None:
    """What bounds the memory: above latent resolution no activation holds more values than a
    tile of the widest segment with its halo, in either tier (the earlier tier's tiles are
    larger but narrower)."""
    model = _decoder(groups=8) if layout == "kl-f4" else _sd_shaped(groups=4)
    z = torch.randn(1, model.config.z_channels, 48, 40)
    segments = td._segments(model.decoder)
    tile, halo = 10, math.ceil(sum(s.reach for s in segments))
    bound = max(s.size for s in segments) * (tile + 2 * halo) ** 2
    largest = [0]

    def watch(module: torch.nn.Module, args: object, out: torch.Tensor) -> None:
        if out.shape[-1] > z.shape[-1]:  # above latent resolution
            largest[0] = max(largest[0], out[0].numel())

    handles = [m.register_forward_hook(watch) for m in model.decoder.modules()]
    with torch.no_grad():
        model.decode(z, tile=tile)
        tiled = largest[0]
        largest[0] = 0
        model.decode(z)
    for handle in handles:
        handle.remove()
    assert 0 < tiled <= bound < largest[0]


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


def _sd_shaped(groups: int) -> Autoencoder:
    """Stable Diffusion's decoder layout (f8, channels x1 x2 x4 x4), narrow."""
    torch.manual_seed(0)
    config = AutoencoderConfig(
        model_channels=8,
        channel_mult=(1, 2, 4, 4),
        num_res_blocks=1,
        norm_groups=groups,
        z_channels=4,
    )
    return Autoencoder(config).eval()


def test_the_narrow_early_levels_run_in_tiles_twice_the_side() -> None:
    """Where the first levels hold a quarter of the values per latent pixel of the last ones (as
    in Stable Diffusion's decoder: 512 channels at 2x against 256 at 8x), they take tiles of
    twice the side, and tiles of the rest run inside them."""
    tiers = td._tiers(td._segments(_sd_shaped(groups=4).decoder), 16)
    assert [tile for _, tile in tiers] == [32, 16]
    first, rest = tiers[0][0], tiers[1][0]
    assert [s.scale for s in first] == [2, 2, 2]  # upsampling, then the level at 2x
    assert max(s.size for s in first) * 4 <= max(s.size for s in rest)
    assert len(td._tiers(td._segments(_decoder(groups=8).decoder), 16)) == 1  # kl-f4: one tier


@pytest.mark.parametrize("tile", [3, 7, 12])
def test_two_tiers_without_group_norms_equal_the_whole_decode(tile: int) -> None:
    """Odd sizes, several tiles of each tier, and tiles narrower than the halo."""
    model = _sd_shaped(groups=0)
    z = torch.randn(2, 4, 37, 29)
    with torch.no_grad():
        torch.testing.assert_close(model.decode(z, tile=tile), model.decode(z), atol=1e-5, rtol=0)


def test_two_tiers_with_the_whole_decodes_statistics_equal_it() -> None:
    model = _sd_shaped(groups=4)
    decoder, z = model.decoder, torch.randn(1, 4, 30, 26)
    with torch.no_grad():
        whole = decoder(z)
        h, segments = td._whole_part(decoder, z), td._segments(decoder)
        norms, moments = td._group_norms([(segments, 0)]), td._Moments()
        with td._recording(norms, moments):
            torch.testing.assert_close(decoder(z), whole)
        tiles = torch.empty_like(whole)
        image, core = (30, 26), (0, 30, 0, 26)
        with td._fixed(norms, moments.statistics()):
            for box, part in td._tiles(td._tiers(segments, 6), h, core, 1, core, image):
                tiles[..., box[0] * 8 : box[1] * 8, box[2] * 8 : box[3] * 8] = part
        torch.testing.assert_close(tiles, whole, atol=1e-5, rtol=0)


def test_a_first_tier_that_fits_runs_once_with_its_own_statistics() -> None:
    """At 1024 px with tiles of 64, Stable Diffusion's first tier (128) covers the latent: it
    runs whole, exactly, and only the later norms are estimated (from its output)."""
    model = _sd_shaped(groups=4)
    decoder, z = model.decoder, torch.randn(1, 4, 24, 20)
    first = td._tiers(td._segments(decoder), 12)[0][0]
    outputs: list[torch.Tensor] = []
    handle = first[-1].run.register_forward_hook(lambda m, a, out: outputs.append(out))
    with torch.no_grad():
        decoder(z)
        tiled = td.decode_in_tiles(decoder, z, 12)
    handle.remove()
    assert len(outputs) == 2  # the whole decode's, then the tiled one's: no estimate of it
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-5, rtol=0)
    assert tiled.shape == (1, 3, 192, 160) and torch.isfinite(tiled).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_recorded_statistics_are_the_inputs_mean_and_variance(dtype: torch.dtype) -> None:
    """Recording keeps the statistics the norm computes anyway (float32 for a bfloat16 input)."""
    norm = torch.nn.GroupNorm(4, 16)
    x = (torch.randn(2, 16, 9, 7) * 3 + 1).to(dtype)
    moments = td._Moments()
    with td._recording([norm], moments), torch.no_grad():
        out = norm(x)
        norm(x[..., :4, :])
    torch.testing.assert_close(out, F.group_norm(x, 4, norm.weight, norm.bias))
    assert "forward" not in vars(norm)
    mean, var = moments.statistics()[0]
    groups = torch.cat([x.float().reshape(2, 4, -1), x[..., :4, :].float().reshape(2, 4, -1)], -1)
    torch.testing.assert_close(mean, groups.mean(-1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(var, groups.var(-1, correction=0), atol=1e-4, rtol=1e-4)


def test_windows_are_a_quarter_of_the_map_at_full_size_in_every_tile() -> None:
    x = torch.randn(1, 5, 60, 52)  # a 30x26 latent at scale 2
    tiles = list(td._within((0, 30, 0, 26), 8))
    windows = list(td._windows(x, 2, 8))
    assert len(windows) == len(tiles) == 16
    area = 0
    for (pixels, have, core), (top, bottom, left, right) in zip(windows, tiles, strict=True):
        assert have == (0, core[1] * 2, 0, core[3] * 2) and pixels.shape[-2:] == have[1::2]
        area += core[1] * core[3]
        assert 2 * core[1] <= bottom - top and 2 * core[3] <= right - left
        found = [(i, j) for i in range(top, bottom) for j in range(left, right)
                 if torch.equal(x[..., 2 * i : 2 * i + pixels.shape[-2],
                                  2 * j : 2 * j + pixels.shape[-1]], pixels)]  # fmt: skip
        assert found  # a window of that tile, at full size
    assert 0.2 * 30 * 26 <= area <= 0.25 * 30 * 26


@pytest.mark.parametrize(("layout", "windows"), [("kl-f4", False), ("sd-f8", True)])
def test_f8_decoders_estimate_from_full_size_windows(
    layout: str, windows: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shrinking an f8 latent by half loses what its later norms see (29 dB on a trained kl-f8,
    against 38-43 from windows); an f4 latent survives it (41 dB, where windows gave 34-39):
    docs/results/megapixel.md."""
    model = _decoder(groups=8) if layout == "kl-f4" else _sd_shaped(groups=4)
    seen: list[bool] = []
    estimate = td._estimated_statistics

    def spy(*args: object) -> list[td.Statistics]:
        seen.append(bool(args[-1]))
        return estimate(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(td, "_estimated_statistics", spy)
    z = torch.randn(1, model.config.z_channels, 30, 26)
    with torch.no_grad():
        tiled = model.decode(z, tile=8)
    assert seen == [windows] and torch.isfinite(tiled).all()
