"""Toy-world reader: exact on fresh renders, robust to autoencoder-like degradations, both input conventions.

The seeds here were never used to tune the reader (tuning used 1, 3, 99, 123, 777, 4242).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from loba.toyworld.attributes import COLOR_RGB, IMAGE_SIZE, size_area_threshold
from loba.toyworld.reader import read_batch, read_batch_float
from loba.toyworld.render import coverage, render_batch

ATTRIBUTES = ("shape", "color", "size", "background")
FRESH_SEED, NOISE_SEED = 20260611, 31


def read_one(image):
    return read_batch(np.asarray(image)[None])[0]


def degrade(images: np.ndarray, seed: int, factor: int, blur_sigma: float = 1.0, noise: float = 3.0, drift: float = 0.0):
    """Autoencoder stand-in: area-downsample by `factor`, bilinear back up, Gaussian blur, per-image color drift
    (gain 1 +- drift%, offset +- drift levels per channel), Gaussian noise (levels); uint8 out."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    x = F.interpolate(F.interpolate(x, size=IMAGE_SIZE // factor, mode="area"), size=IMAGE_SIZE, mode="bilinear", align_corners=False)
    radius = int(3 * blur_sigma + 1)
    taps = torch.exp(-torch.arange(-radius, radius + 1.0) ** 2 / (2 * blur_sigma**2))
    taps = (taps / taps.sum()).repeat(3, 1, 1, 1)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), taps.view(3, 1, 1, -1), groups=3)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), taps.view(3, 1, -1, 1), groups=3)
    gain = 1 + drift / 100 * (2 * torch.rand(len(x), 3, 1, 1, generator=generator) - 1)
    offset = drift * (2 * torch.rand(len(x), 3, 1, 1, generator=generator) - 1)
    x = x * gain + offset + noise * torch.randn(x.shape, generator=generator)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope="module")
def fresh_world():
    return render_batch(2000, seed=FRESH_SEED)


def _scores(results, scenes, mask=None):
    keep = np.ones(len(scenes), bool) if mask is None else mask
    pairs = [(r, a) for r, a, k in zip(results, scenes, keep) if k]
    accuracy = {name: float(np.mean([getattr(r, name) == getattr(a, name) for r, a in pairs])) for name in ATTRIBUTES}
    center_error = np.mean([np.hypot(r.center[0] - a.center[0], r.center[1] - a.center[1]) for r, a in pairs])
    return accuracy, float(center_error)


def test_reads_fresh_renders_exactly(fresh_world):
    images, scenes = fresh_world
    results = read_batch(images)
    accuracy, center_error = _scores(results, scenes)
    print(f"clean: {accuracy}, mean center error {center_error:.3f} px")
    assert min(accuracy.values()) >= 0.99
    assert center_error < 0.3
    assert np.mean([r.confident for r in results]) >= 0.99
    areas = np.array([r.area for r in results]) * IMAGE_SIZE**2
    expected = np.array([np.pi * a.scale**2 / 4 for a in scenes])
    assert np.median(np.abs(areas / expected - 1)) < 0.03


def test_survives_a_4x_latent_proxy_with_color_drift(fresh_world):
    # Keeps what a 4-channel 8x latent with a learned decoder can carry: sharpness ~ a 16x16 grid, shifted colors.
    images, scenes = fresh_world
    accuracy, center_error = _scores(read_batch(degrade(images, NOISE_SEED, factor=4, drift=8.0)), scenes)
    print(f"4x + blur 1 + noise 3 + drift 8: {accuracy}, mean center error {center_error:.3f} px")
    assert min(accuracy.values()) >= 0.98
    assert center_error < 0.4


def test_8x_bilinear_proxy_keeps_everything_but_small_circle_vs_square(fresh_world):
    # A linear 8x8 bottleneck is harsher than any trained decoder: an 18-22 px circle and square of equal area
    # become the same 2-cell blob (to a person too), so only large shapes must stay exact there.
    images, scenes = fresh_world
    results = read_batch(degrade(images, NOISE_SEED, factor=8))
    accuracy, center_error = _scores(results, scenes)
    large_accuracy, _ = _scores(results, scenes, np.array([a.size == "large" for a in scenes]))
    print(f"8x + blur 1 + noise 3: {accuracy}, large-only shape {large_accuracy['shape']:.4f}, center {center_error:.3f} px")
    assert min(accuracy["color"], accuracy["size"], accuracy["background"], large_accuracy["shape"]) >= 0.98
    assert accuracy["shape"] >= 0.95
    assert center_error < 0.5


def test_float_entry_points_match_uint8(fresh_world):
    images = fresh_world[0][:16]
    expected = read_batch(images)
    unit = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    assert read_batch_float(unit, value_range=(0.0, 1.0)) == expected
    assert read_batch_float(unit * 2 - 1, value_range=(-1.0, 1.0)) == expected
    assert read_batch_float(torch.as_tensor(unit[0] * 2 - 1)[None], value_range=(-1.0, 1.0))[0] == expected[0]
    assert read_one(images[0]) == expected[0]
    with pytest.raises(ValueError):
        read_batch(images.astype(np.float32))
    with pytest.raises(ValueError):
        read_batch_float(unit[:, :, :32], value_range=(0.0, 1.0))


def _composite(shape, scale, center, color, gray):
    alpha = coverage(shape, scale, center)[..., None]
    return np.rint(gray * (1 - alpha) + np.asarray(COLOR_RGB[color]) * alpha).astype(np.uint8)


def test_empty_image_reports_no_object():
    result = read_one(np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 40, np.uint8))
    assert (result.shape, result.color, result.size, result.center, result.confident) == (None, None, None, None, False)
    assert result.background == "dark" and result.area == 0.0


def test_distractor_blob_and_hole_are_ignored():
    image = _composite("square", 33.0, (36.0, 36.0), "blue", 215.0)
    image[6:9, 6:9] = COLOR_RGB["red"]  # a stray speck: not the largest component
    image[35:37, 35:37] = 215  # a pinhole inside the object: filled
    result = read_one(image)
    assert (result.shape, result.color, result.size, result.background) == ("square", "blue", "large", "light")
    assert result.center == pytest.approx((36.0, 36.0), abs=0.3)


def test_in_between_size_is_not_confident():
    scale = 2 * np.sqrt(size_area_threshold() / np.pi)  # exactly on the small/large boundary
    result = read_one(_composite("circle", scale, (32.0, 32.0), "green", 30.0))
    assert result.shape == "circle" and result.color == "green" and not result.confident
