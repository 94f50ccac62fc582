import pytest
import torch

from loba.config import LossConfig
from loba.diffusion.schedule import NoiseSchedule
from loba.errors import ConfigError
from loba.objectives.losses import LOSSES, compute_loss, min_snr_weight, per_sample_loss, reduce_per_sample


def sd_schedule(prediction_type="epsilon") -> NoiseSchedule:
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return NoiseSchedule(torch.cumprod(1 - betas, dim=0), prediction_type)


# Residuals below and above delta = 1 (pred - target).
PRED = torch.tensor([0.5, -0.25, 3.0, -2.0])
TARGET = torch.zeros(4)


def test_mse_and_l1_by_hand():
    assert LOSSES.get("mse")(PRED, TARGET, 1.0).tolist() == [0.25, 0.0625, 9.0, 4.0]
    assert LOSSES.get("l1")(PRED, TARGET, 1.0).tolist() == [0.5, 0.25, 3.0, 2.0]


@pytest.mark.parametrize("delta", [1.0, 0.4])
def test_huber_is_quadratic_inside_delta_and_linear_outside(delta):
    expected = [0.5 * x**2 if abs(x) <= delta else delta * (abs(x) - 0.5 * delta) for x in PRED.tolist()]
    assert LOSSES.get("huber")(PRED, TARGET, delta).tolist() == pytest.approx(expected)


@pytest.mark.parametrize("delta", [1.0, 0.4])
def test_smooth_l1_is_huber_over_delta(delta):
    expected = [0.5 * x**2 / delta if abs(x) < delta else abs(x) - 0.5 * delta for x in PRED.tolist()]
    assert LOSSES.get("smooth_l1")(PRED, TARGET, delta).tolist() == pytest.approx(expected)


def test_pseudo_huber_by_hand_and_its_limits():
    delta = 1.0
    expected = [2 * delta * ((x**2 + delta**2) ** 0.5 - delta) for x in PRED.tolist()]
    assert LOSSES.get("pseudo_huber")(PRED, TARGET, delta).tolist() == pytest.approx(expected)
    tiny, huge = torch.tensor([1e-2]), torch.tensor([1e3])
    assert LOSSES.get("pseudo_huber")(tiny, torch.zeros(1), 1.0).item() == pytest.approx(1e-4 - 2.5e-9, rel=1e-6)  # no float32 cancellation
    assert LOSSES.get("pseudo_huber")(huge, torch.zeros(1), 1.0).item() == pytest.approx(2e3, rel=1e-2)


def test_unknown_loss_lists_registered_names():
    with pytest.raises(ConfigError) as info:
        LOSSES.get(LossConfig(loss_type="msee").loss_type)
    assert info.value.field == "loss_type"
    assert all(name in str(info.value) for name in ["mse", "huber", "pseudo_huber"])


def test_registered_loss_is_used_by_compute_loss(monkeypatch):
    monkeypatch.setattr(LOSSES, "_items", dict(LOSSES._items))
    LOSSES.register("cube", lambda pred, target, delta: (pred - target).abs() ** 3)
    pred = torch.full((1, 1, 2, 2), 2.0)
    loss = compute_loss(pred, torch.zeros_like(pred), cfg=LossConfig(loss_type="Cube"),
                        timesteps=torch.tensor([10]), schedule=sd_schedule())
    assert loss.item() == pytest.approx(8.0)


def test_half_mask_of_a_uniform_error_matches_no_mask():
    elementwise = torch.full((2, 4, 8, 8), 0.7)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1.0
    torch.testing.assert_close(reduce_per_sample(elementwise, mask), reduce_per_sample(elementwise))
    torch.testing.assert_close(reduce_per_sample(elementwise), torch.full((2,), 0.7))


def test_mask_selects_the_masked_area_per_sample():
    elementwise = torch.zeros(2, 1, 2, 2)
    elementwise[:, :, 0, 0] = 4.0
    mask = torch.zeros(2, 1, 2, 2)
    mask[0, :, 0, 0] = 1.0  # sample 0 sees only the error
    mask[1, :, 1, 1] = 1.0  # sample 1 sees only zeros
    assert reduce_per_sample(elementwise, mask).tolist() == [4.0, 0.0]


def test_zero_area_mask_gives_zero_not_nan_and_no_nan_gradient():
    pred = torch.ones(2, 3, 4, 4, requires_grad=True)
    mask = torch.ones(2, 1, 4, 4)
    mask[1] = 0.0
    per_sample = reduce_per_sample((pred - 0.5) ** 2, mask)
    assert per_sample.tolist() == [0.25, 0.0]
    per_sample.sum().backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[1].abs().sum() == 0


def test_mask_of_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="mask shape"):
        reduce_per_sample(torch.zeros(1, 4, 8, 8), torch.ones(1, 1, 4, 4))


def test_min_snr_weights_for_epsilon_and_v():
    snr = torch.tensor([0.5, 5.0, 20.0])
    assert min_snr_weight(snr, 0.0, "epsilon").tolist() == [1.0, 1.0, 1.0]
    assert min_snr_weight(snr, 0.0, "v_prediction").tolist() == [1.0, 1.0, 1.0]
    torch.testing.assert_close(min_snr_weight(snr, 5.0, "epsilon"), torch.tensor([1.0, 1.0, 0.25]))
    torch.testing.assert_close(min_snr_weight(snr, 5.0, "v_prediction"), torch.tensor([0.5 / 1.5, 5 / 6, 5 / 21]))


def test_min_snr_epsilon_weight_is_finite_at_zero_snr():
    assert min_snr_weight(torch.tensor([0.0]), 5.0, "epsilon").tolist() == [1.0]


def test_weighted_eps_loss_equals_weighted_v_loss_at_random_timesteps():
    gen = torch.Generator().manual_seed(0)
    timesteps = torch.randint(0, 1000, (16,), generator=gen)
    x_t, eps, eps_pred = (torch.randn(16, 4, 8, 8, generator=gen) for _ in range(3))
    eps_schedule, v_schedule = sd_schedule("epsilon"), sd_schedule("v_prediction")
    v_target = v_schedule.from_epsilon(eps, x_t, timesteps)
    v_pred = v_schedule.from_epsilon(eps_pred, x_t, timesteps)
    cfg = LossConfig(min_snr_gamma=5.0)
    eps_loss = per_sample_loss(eps_pred, eps, cfg=cfg, timesteps=timesteps, schedule=eps_schedule)
    v_loss = per_sample_loss(v_pred, v_target, cfg=cfg, timesteps=timesteps, schedule=v_schedule)
    torch.testing.assert_close(eps_loss, v_loss, rtol=1e-4, atol=1e-6)
    # ... and the unweighted losses really differ, so the weights are doing the work.
    plain = LossConfig()
    assert not torch.allclose(per_sample_loss(eps_pred, eps, cfg=plain, timesteps=timesteps, schedule=eps_schedule),
                              per_sample_loss(v_pred, v_target, cfg=plain, timesteps=timesteps, schedule=v_schedule))


def test_min_snr_uses_real_timesteps():
    schedule = sd_schedule()
    timesteps = torch.tensor([5, 900])
    pred = torch.ones(2, 1, 2, 2)
    per_sample = per_sample_loss(pred, torch.zeros_like(pred), cfg=LossConfig(min_snr_gamma=5.0),
                                 timesteps=timesteps, schedule=schedule)
    torch.testing.assert_close(per_sample, min_snr_weight(schedule.snr(timesteps), 5.0, "epsilon"))
    assert per_sample[0] < 1 and per_sample[1] == 1  # low t: high SNR, clipped; high t: weight 1


def test_compute_loss_is_float32_batch_mean_times_weight():
    pred = torch.tensor([1.0, 3.0]).reshape(2, 1, 1, 1).half()
    target = torch.zeros_like(pred)
    kwargs = dict(cfg=LossConfig(), timesteps=torch.tensor([1, 2]), schedule=sd_schedule())
    loss = compute_loss(pred, target, weight=0.5, **kwargs)
    assert loss.dtype == torch.float32 and loss.ndim == 0
    assert loss.item() == pytest.approx(0.5 * (1 + 9) / 2)
    assert compute_loss(pred, target, weight=torch.tensor([1.0, 0.0]), **kwargs).item() == pytest.approx(0.5)


def test_compute_loss_backpropagates_into_pred():
    pred = torch.zeros(1, 4, 4, 4, requires_grad=True)
    compute_loss(pred, torch.ones_like(pred), cfg=LossConfig(loss_type="huber"), timesteps=torch.tensor([500]),
                 schedule=sd_schedule(), mask=torch.ones(1, 1, 4, 4)).backward()
    assert pred.grad is not None and (pred.grad < 0).all()
