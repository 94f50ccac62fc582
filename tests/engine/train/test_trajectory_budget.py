"""The trajectory cache is bounded: model-dtype storage, a byte budget, least-recently-used eviction, and a
checkpoint that carries no more than the budget."""

import torch

from loba.config import TrainConfig
from loba.prompts import PromptPair, PromptSet
from loba.train.step import SliderStep
from loba.train.trajectories import MIB, TrajectoryCache

SHAPE = (3, 1, 4, 8, 8)  # K grid entries x batch x C x h x w: 768 values, 1536 bytes in bf16
BYTES = 3 * 4 * 8 * 8 * 2


def _maker(log: list):
    def make(n: int) -> list[torch.Tensor]:
        log.append(n)
        return [torch.full(SHAPE, 10.0 * len(log) + i) for i in range(n)]  # deterministic: two caches can compare
    return make


def test_trajectories_are_stored_in_the_model_dtype_and_read_as_float32():
    cache = TrajectoryCache(size=2, refresh_every=100, seed=0, dtype=torch.bfloat16)
    made = []

    def make(n):
        made.extend(torch.randn(SHAPE) for _ in range(n))
        return made[-n:]

    x = cache.x_t((0, 64, 64), 2, make)
    assert x.dtype == torch.float32 and torch.equal(x, made[0][1].to(torch.bfloat16).float())
    assert all(t.dtype == torch.bfloat16 for pool in cache.pools.values() for t in pool)
    assert cache.nbytes == 2 * BYTES


def test_a_bucket_holds_only_what_fits_the_budget():
    log = []
    cache = TrajectoryCache(size=8, refresh_every=100, seed=0, dtype=torch.bfloat16, budget_bytes=3 * BYTES + 10)
    cache.x_t((0, 64, 64), 1, _maker(log), trajectory_bytes=BYTES)
    assert log == [3], "sized before the denoise: only three trajectories are made"
    assert cache.nbytes <= cache.budget_bytes


def test_least_recently_used_buckets_are_evicted_and_remade_on_their_next_use():
    log = []
    make = _maker(log)
    cache = TrajectoryCache(size=2, refresh_every=100, seed=0, dtype=torch.bfloat16, budget_bytes=4 * BYTES)
    for key in [(0, 64, 64), (1, 64, 64), (0, 64, 64), (2, 64, 64)]:  # pair 1 is then the least recently used
        cache.x_t(key, 1, make, BYTES)
        assert cache.nbytes <= cache.budget_bytes
    assert list(cache.pools) == [(0, 64, 64), (2, 64, 64)] and cache.evictions == 1
    assert (1, 64, 64) not in cache.uses_since_refresh
    cache.x_t((1, 64, 64), 1, make, BYTES)
    assert log == [2, 2, 2, 2], "the evicted bucket is made again, in full"
    assert cache.nbytes <= cache.budget_bytes and cache.evictions == 2


def test_without_a_size_hint_an_oversized_bucket_is_trimmed_after_the_denoise():
    cache = TrajectoryCache(size=4, refresh_every=1, seed=0, dtype=torch.bfloat16, budget_bytes=2 * BYTES)
    log = []
    first = cache.x_t((0, 64, 64), 1, _maker(log))
    (pool,) = cache.pools.values()
    assert len(pool) == 2 and pool.maxlen == 2 and torch.equal(first, pool[-1][0].float()), "the used one stays"
    cache.x_t((0, 64, 64), 1, _maker(log))  # a refresh: one new trajectory replaces the oldest
    assert log == [4, 1] and cache.nbytes <= cache.budget_bytes


def test_the_checkpoint_state_is_bounded_and_resumes_the_same_buckets():
    cache = TrajectoryCache(size=3, refresh_every=2, seed=0, dtype=torch.bfloat16, budget_bytes=5 * BYTES)
    log = []
    for step in range(12):
        cache.x_t((step % 4, 64, 64), 1 + step % 3, _maker(log), BYTES)
    state = cache.state_dict()
    assert sum(_bytes(t) for pool in state["pools"].values() for t in pool) <= 5 * BYTES
    again = TrajectoryCache(size=3, refresh_every=2, seed=0, dtype=torch.bfloat16, budget_bytes=5 * BYTES)
    again.load_state_dict(state)
    assert list(again.pools) == list(cache.pools) and again.evictions == cache.evictions
    assert [p.maxlen for p in again.pools.values()] == [p.maxlen for p in cache.pools.values()]
    made_a, made_b = list(log), list(log)
    for step in range(12, 20):
        key = (step % 4, 64, 64)
        assert torch.equal(cache.x_t(key, 2, _maker(made_a), BYTES), again.x_t(key, 2, _maker(made_b), BYTES))
    assert made_a == made_b and len(made_a) > len(log), "the same refreshes and re-made buckets"


def _bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def test_the_step_builds_the_cache_in_the_model_dtype_with_the_configured_budget(sd1_backend):
    prompts = PromptSet(entries=(PromptPair(target="a red circle", positive="red", resolutions=((64, 64),)),))
    config = TrainConfig().replace(max_denoising_steps=6, trajectory_cache=4, trajectory_cache_mb=3)
    assert TrainConfig().sampling.trajectory_cache_mb == 512

    class Null:
        multiplier = 0.0

    step = SliderStep(sd1_backend, Null(), prompts, config, sd1_backend.encode_prompts(prompts.all_prompts()))
    assert step.cache.dtype == sd1_backend.dtype and step.cache.budget_bytes == 3 * MIB
    plan = step.plan(torch.Generator().manual_seed(0))
    step.denoise(plan)
    expected = step.allowed_k[-1] * plan.noise.numel() * sd1_backend.dtype.itemsize
    assert step.cache.nbytes == 4 * expected
