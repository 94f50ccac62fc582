"""The closed-form start: its map solves the least-squares problem, its factorization is the truncated SVD,
it sets exactly the cross-attention key/value adapters, and a run started from it resumes exactly."""

import pytest
import torch

from loba.adapters.closed_form import closed_form_init, edit_map, factor, objective_rows
from loba.adapters.initializers import INITIALIZERS
from loba.config import TrainConfig
from loba.errors import ConfigError
from loba.prompts import AnchorPrompt, PromptPair, PromptSet, SliderTarget
from loba.train.loop import build_network, train


def _rows(n, dim, seed):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_the_map_solves_the_regularized_least_squares_problem():
    dim, out = 12, 7
    w = _rows(out, dim, 0)
    edits = [(_rows(5, dim, 1), _rows(5, dim, 2), 0.7), (_rows(4, dim, 3), _rows(4, dim, 4), 1.3)]
    kept = [(_rows(6, dim, 5), 2.0)]
    lam = 0.05
    delta = w @ edit_map(edits, kept, lam)
    # The same problem stacked as one ordinary least squares in dW: ||dW A - B||^2.
    gram_trace = sum(wt * float((c * c).sum()) for c, _, wt in edits) + sum(s * float((c * c).sum()) for c, s in kept)
    ridge = lam * gram_trace / dim
    a = torch.cat([wt ** 0.5 * c.T for c, _, wt in edits] + [s ** 0.5 * c.T for c, s in kept]
                  + [ridge ** 0.5 * torch.eye(dim, dtype=torch.float64)], dim=1)
    b = torch.cat([wt ** 0.5 * (w @ d.T) for _, d, wt in edits] + [torch.zeros(out, c.shape[0], dtype=torch.float64) for c, _ in kept]
                  + [torch.zeros(out, dim, dtype=torch.float64)], dim=1)
    expected = torch.linalg.lstsq(a.T, b.T).solution.T
    torch.testing.assert_close(delta, expected, rtol=1e-8, atol=1e-10)


def test_targets_map_as_asked_and_preserved_embeddings_barely_move():
    # Fewer rows than dimensions: the edit can be met exactly while the kept rows stay put.
    dim, out = 16, 9
    w, target, goal, kept_rows = _rows(out, dim, 0), _rows(3, dim, 1), _rows(3, dim, 2), _rows(4, dim, 3)
    delta = w @ edit_map([(target, goal - target, 1.0)], [(kept_rows, 1.0)], lam=1e-9)
    mapped = (w + delta) @ target.T
    torch.testing.assert_close(mapped, w @ goal.T, rtol=1e-5, atol=1e-5)
    moved = (delta @ kept_rows.T).norm() / (w @ kept_rows.T).norm()
    assert moved < 1e-5
    # A stronger ridge keeps the edit smaller: the preserved rows move less than the bound, the targets less far.
    softer = w @ edit_map([(target, goal - target, 1.0)], [(kept_rows, 1.0)], lam=1.0)
    assert softer.norm() < delta.norm()


@pytest.mark.parametrize("rank", [1, 3, 9])
def test_the_rank_r_factorization_is_the_truncated_svd(rank):
    delta = _rows(9, 14, 7).float()
    scale = 0.25
    up, down, error = factor(delta, rank, scale)
    assert up.shape == (9, rank) and down.shape == (rank, 14)
    u, s, vh = torch.linalg.svd(delta.double(), full_matrices=False)
    truncated = (u[:, :rank] * s[:rank]) @ vh[:rank]
    torch.testing.assert_close((up.double() @ down.double()) * scale, truncated, rtol=1e-5, atol=1e-5)
    assert error == pytest.approx(float((delta.double() - truncated).norm() / delta.double().norm()), abs=1e-6)
    assert (error == pytest.approx(0.0, abs=1e-6)) == (rank >= 9)


def test_objectives_map_to_their_targets():
    c = {p: _rows(2, 4, i) for i, p in enumerate(["t", "n", "p", "u"])}
    erase = PromptPair(target="t", positive="p", unconditional="u", neutral="n", action="erase", guidance_scale=2.0)
    enhance = PromptPair(target="t", positive="p", unconditional="u", neutral="n", action="enhance", multiplier=-2.0)
    edits, kept = objective_rows([erase, enhance], [AnchorPrompt("n", weight=3.0)], c, preservation_weight=0.5)
    torch.testing.assert_close(edits[0][1], c["n"] - 2.0 * (c["p"] - c["u"]) - c["t"])
    # At multiplier m the adapter applies m * dW: the shift is divided by m and the weight multiplied by m^2.
    torch.testing.assert_close(edits[1][1], (c["n"] + (c["p"] - c["u"]) - c["t"]) / -2.0)
    assert edits[0][2] == pytest.approx(0.5) and edits[1][2] == pytest.approx(0.5 * 4.0)
    assert kept[0][1] == pytest.approx(0.5 * 3.0 * (1 + 4) / 2)


PROMPTS = PromptSet(entries=(PromptPair(target="a red circle", positive="a red circle", unconditional="a circle",
                                        neutral="a circle", resolutions=((64, 64),)),
                             SliderTarget(target_class="a circle", positive="large", negative="small", resolutions=((64, 64),))),
                    anchors=(AnchorPrompt("a blue square"),))
CONFIG = TrainConfig().replace(max_denoising_steps=4, max_train_steps=6, learning_rate=1e-3, seed=3, init="closed_form",
                               preset="cross_attention", network_dim=2, network_alpha=1.0)


def test_only_cross_attention_keys_and_values_are_set_to_the_factored_edit(sd1_backend):
    network = build_network(sd1_backend, CONFIG)
    report = closed_form_init(network, sd1_backend, PROMPTS, CONFIG)
    assert report.modules and all(n.endswith(("attn2.to_k", "attn2.to_v")) for n in report.modules)
    assert report.skipped and all(not n.endswith(("attn2.to_k", "attn2.to_v")) for n in report.skipped)
    assert set(report.truncation_error) == set(report.modules) and 0 <= report.max_truncation_error < 1
    for name, lora in network.items():
        assert bool(lora.lora_up.weight.abs().sum() > 0) == (name in report.modules)  # the rest: kohya's no-op
    # The edit moves the target's keys toward its erase goal (neutral - (positive - unconditional)).
    contexts = {p: c.context[0] for p, c in sd1_backend.encode_prompts(["a red circle", "a circle"]).items()}
    name = report.modules[0]
    base, lora = sd1_backend.unet.get_submodule(name), network.lora(name)
    goal = base(2 * contexts["a circle"] - contexts["a red circle"])
    before = base(contexts["a red circle"])
    with torch.no_grad():
        after = before + lora.delta(contexts["a red circle"])
    assert (after - goal).norm() < (before - goal).norm()


def test_an_unknown_initializer_is_refused_naming_the_field():
    assert {"default", "closed_form"} <= set(INITIALIZERS.names())
    with pytest.raises(ConfigError, match="init"):
        train(None, PROMPTS, CONFIG.replace(init="nope"))


def test_a_run_started_from_the_closed_form_resumes_exactly(sd1_backend, tmp_path):
    config = CONFIG.replace(save_every_n_steps=3)
    full = train(sd1_backend, PROMPTS, config, out_dir=tmp_path / "full")
    checkpoint = tmp_path / "full" / "checkpoints" / "step-000003.pt"
    resumed = train(sd1_backend, PROMPTS, config, out_dir=tmp_path / "resumed", resume=checkpoint)
    assert resumed.losses == full.losses[3:]
    full_state, resumed_state = full.network.module_state(), resumed.network.module_state()
    for name in full_state:
        for key in full_state[name]:
            assert torch.equal(full_state[name][key], resumed_state[name][key]), (name, key)
    # And the start was the closed form, not kohya's no-op: step 1 of a default run has another loss.
    default = train(sd1_backend, PROMPTS, CONFIG.replace(init="default", max_train_steps=1))
    assert default.losses[0] != full.losses[0]


def test_the_instant_slider_is_the_closed_form_saved_alone(sd1_backend, tmp_path):
    from loba.sliders.kohya import load_slider
    from loba.train.instant import instant_slider

    slider, report = instant_slider(sd1_backend, PROMPTS, CONFIG)
    assert slider.steps_done == 0 and report.modules
    path = slider.save(tmp_path / "instant.safetensors")
    tensors = load_slider(path).tensors
    name = report.modules[0]
    key = sd1_backend.kohya_name(name) + ".lora_up.weight"
    torch.testing.assert_close(tensors[key].float(), slider.network.lora(name).lora_up.weight.detach())
    with pytest.raises(ConfigError, match="init"):
        instant_slider(sd1_backend, PROMPTS, CONFIG.replace(init="default"))


def test_large_layers_use_a_randomized_svd_that_matches_the_truncated_one():
    gen = torch.Generator().manual_seed(0)
    # SDXL-sized (smaller side above EXACT_SVD_MAX): a rank-6 edit plus small noise, factored to rank 4.
    low = torch.randn(1100, 6, generator=gen, dtype=torch.float64) @ torch.randn(6, 1200, generator=gen, dtype=torch.float64)
    delta = low * torch.linspace(1, 3, 1200, dtype=torch.float64) + 1e-3 * torch.randn(1100, 1200, generator=gen,
                                                                                         dtype=torch.float64)
    up, down, error = factor(delta, 4, 0.5)
    u, s, vh = torch.linalg.svd(delta, full_matrices=False)
    truncated = (u[:, :4] * s[:4]) @ vh[:4]
    assert float(((up.double() @ down.double()) * 0.5 - truncated).norm() / truncated.norm()) < 1e-4
    assert error == pytest.approx(float((delta - truncated).norm() / delta.norm()), rel=1e-3)
