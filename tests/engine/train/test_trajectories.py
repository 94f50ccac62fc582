"""The trajectory cache: far fewer denoise calls, x_t exactly a prefix of a real denoise, exact resume."""

import torch

from loba.config import TrainConfig
from loba.prompts import PromptPair, PromptSet
from loba.train.loop import train
from loba.train.step import SliderStep

PROMPTS = PromptSet(entries=(PromptPair(target="a red circle", positive="red", resolutions=((64, 64),)),
                             PromptPair(target="a blue square", positive="blue", resolutions=((64, 64),))))
BASE = TrainConfig().replace(max_denoising_steps=8, max_train_steps=24, learning_rate=1e-3, seed=3, denoise_with_adapter=False)


class Counting:
    """Counts model calls by batch shape: the denoise calls predict with a CFG pair of the step's batch."""

    def __init__(self, backend):
        self.backend, self.calls = backend, 0
        self.original = backend.predict

    def __enter__(self):
        def counted(*args, **kwargs):
            self.calls += 1
            return self.original(*args, **kwargs)

        self.backend.predict = counted
        return self

    def __exit__(self, *exc):
        self.backend.predict = self.original


def test_the_cache_cuts_model_calls_and_keeps_the_plan_draws(sd1_backend):
    config = BASE.replace(max_train_steps=48)
    with Counting(sd1_backend) as plain:
        train(sd1_backend, PROMPTS, config)
    with Counting(sd1_backend) as cached:
        result = train(sd1_backend, PROMPTS, config.replace(trajectory_cache=2, trajectory_refresh_every=8))
    # Without the cache: k denoise calls (k ~ U{1..7}, mean 4) + 1 teacher + 1 student per step = ~288.
    # With it: 2 warm-up trajectories per pair, then one per 8 uses (7 calls each), + 2 per step = ~162.
    assert cached.calls < 0.7 * plain.calls, (cached.calls, plain.calls)
    assert result.steps_done == 48 and all(torch.isfinite(torch.tensor(result.losses)))


def test_cached_x_t_is_the_fresh_denoise_at_k(sd1_backend):
    config = BASE.replace(trajectory_cache=1, trajectory_refresh_every=1000)
    network_free = SliderStep(sd1_backend, _null_network(), PROMPTS, BASE, sd1_backend.encode_prompts(PROMPTS.all_prompts()))
    cached = SliderStep(sd1_backend, _null_network(), PROMPTS, config, sd1_backend.encode_prompts(PROMPTS.all_prompts()))
    gen = torch.Generator().manual_seed(0)
    plan = cached.plan(gen)
    first = cached.denoise(plan)  # makes the trajectory from this plan's noise
    assert torch.allclose(first, network_free.denoise(plan), atol=1e-6)
    for k in cached.allowed_k:  # every other k of the same pair is read from it, without new model calls
        other = type(plan)(**{**plan.__dict__, "k": k})
        with Counting(sd1_backend) as counting:
            x = cached.denoise(other)
        assert counting.calls == 0 and torch.allclose(x, network_free.denoise(other), atol=1e-6)


def test_resume_with_the_cache_is_exact(sd1_backend, tmp_path):
    config = BASE.replace(trajectory_cache=2, trajectory_refresh_every=3, save_every_n_steps=7, max_train_steps=14)
    whole = train(sd1_backend, PROMPTS, config, out_dir=tmp_path)
    resumed = train(sd1_backend, PROMPTS, config, resume=tmp_path / "checkpoints" / "step-000007.pt")
    assert resumed.losses == whole.losses[7:]
    a, b = whole.network.module_state(), resumed.network.module_state()
    assert all(torch.equal(a[n][key], b[n][key]) for n in a for key in a[n])


class _NullNetwork:
    multiplier = 0.0


def _null_network():
    return _NullNetwork()


def test_the_pool_is_made_in_one_batched_denoise_at_first_use(sd1_backend):
    config = BASE.replace(trajectory_cache=3, trajectory_refresh_every=1000)
    fresh = SliderStep(sd1_backend, _null_network(), PROMPTS, BASE, sd1_backend.encode_prompts(PROMPTS.all_prompts()))
    cached = SliderStep(sd1_backend, _null_network(), PROMPTS, config, sd1_backend.encode_prompts(PROMPTS.all_prompts()))
    plan = cached.plan(torch.Generator().manual_seed(1))
    with Counting(sd1_backend) as counting:
        x = cached.denoise(plan)
    assert counting.calls == cached.allowed_k[-1], "one batched denoise for the whole pool"
    assert torch.allclose(x, fresh.denoise(plan), atol=1e-5), "the step's own noise is the trajectory it uses"
    (pool,) = cached.cache.pools.values()
    assert len(pool) == 3 and cached.cache.trajectories_made == 3
    assert not torch.allclose(pool[0], pool[1]) and not torch.allclose(pool[1], pool[2])
