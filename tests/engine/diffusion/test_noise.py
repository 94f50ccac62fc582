import pytest
import torch

from loba.config import NoiseConfig
from loba.diffusion.noise import initial_noise

SHAPE = (2, 4, 32, 24)


def make(cfg: NoiseConfig, seed: int = 7, dtype=torch.float32) -> torch.Tensor:
    return initial_noise(SHAPE, torch.Generator().manual_seed(seed), cfg, "cpu", dtype)


@pytest.mark.parametrize("cfg", [NoiseConfig(), NoiseConfig(noise_offset=0.1, multires_noise_iterations=6)])
def test_same_seed_same_noise_other_seed_other_noise(cfg):
    assert torch.equal(make(cfg), make(cfg))
    assert not torch.equal(make(cfg), make(cfg, seed=8))


def test_plain_noise_is_standard_normal_from_the_generator():
    expected = torch.randn(SHAPE, generator=torch.Generator().manual_seed(7))
    assert torch.equal(make(NoiseConfig()), expected)


def test_offset_noise_adds_a_per_channel_constant():
    diff = make(NoiseConfig(noise_offset=0.1)) - make(NoiseConfig())
    per_channel = diff[:, :, :1, :1]
    torch.testing.assert_close(diff, per_channel.expand_as(diff))
    assert per_channel.abs().min() > 0
    assert not torch.allclose(per_channel[0], per_channel[1])  # drawn per image too


def test_pyramid_noise_has_unit_std_per_sample_and_differs_from_plain():
    pyramid = make(NoiseConfig(multires_noise_iterations=10, multires_noise_discount=0.5))
    torch.testing.assert_close(pyramid.std(dim=(1, 2, 3)), torch.ones(SHAPE[0]))
    assert not torch.allclose(pyramid, make(NoiseConfig()))


def test_pyramid_adds_low_frequency_energy():
    def coarse_energy(noise):
        return torch.nn.functional.avg_pool2d(noise, 8).pow(2).mean().item()

    plain = make(NoiseConfig())
    pyramid = make(NoiseConfig(multires_noise_iterations=6, multires_noise_discount=0.8))
    assert coarse_energy(pyramid) > 2 * coarse_energy(plain)


def test_pyramid_stops_before_a_side_gets_below_one():
    noise = initial_noise((1, 4, 3, 40), torch.Generator().manual_seed(0), NoiseConfig(multires_noise_iterations=8),
                          "cpu", torch.float32)
    assert noise.shape == (1, 4, 3, 40) and torch.isfinite(noise).all()


def test_dtype_is_applied_at_the_end():
    cfg = NoiseConfig(noise_offset=0.05)
    half = make(cfg, dtype=torch.float16)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half, make(cfg).half())


def test_non_cpu_generator_is_refused():
    class FakeGenerator:
        device = torch.device("meta")

    with pytest.raises(ValueError, match="CPU generator"):
        initial_noise(SHAPE, FakeGenerator(), NoiseConfig(), "cpu", torch.float32)
