"""U-LOBA: the re-attach entry, its target and schedules, explicit anchors, the outside-held mask, bad input."""

import pytest
import torch

from loba.config import TrainConfig
from loba.errors import SpecError
from loba.objectives.actions import OBJECTIVES, TargetContext, pair_actions
from loba.objectives.redirect_schedules import REDIRECT_SCHEDULES
from loba.prompts import AnchorPrompt, PromptPair, PromptSet
from loba.prompts.loader import prompt_set_from_dict
from loba.prompts.reattach import ReattachEntry, ReattachPair
from loba.train.loop import build_network
from loba.train.step import SliderStep

COLORS = ["a red triangle", "a blue triangle", "a green triangle", "a yellow triangle"]


def entry(**overrides) -> ReattachEntry:
    fields = {"caption": "a triangle", "redirect": tuple((p, 1.0) for p in COLORS), "resolutions": ((64, 64),),
              "batch_size": 2, **overrides}
    return ReattachEntry(**fields)


def test_expands_to_one_pair_per_redirect_prompt_with_shares_as_loss_weights():
    pairs = entry(redirect=(("a blue triangle", 3.0), ("a green triangle", 1.0), ("a red triangle", 0.0))).expand()
    assert [(p.target, p.positive, p.action) for p in pairs] == [("a triangle", "a blue triangle", "reattach"),
                                                                 ("a triangle", "a green triangle", "reattach")]
    assert [p.weight for p in pairs] == [1.5, 0.5]  # proportional to the shares, mean 1 (one entry's loss scale)
    assert all(isinstance(p, ReattachPair) and p.schedule == "linear" and p.ramp == 0.5 for p in pairs)


def test_explicit_anchors_default_to_the_redirect_and_join_the_set_once():
    prompts = PromptSet((entry(),), (AnchorPrompt(""), AnchorPrompt("a blue triangle", 2.0)))
    anchors = prompts.training_anchors()
    assert [a.prompt for a in anchors] == ["", "a blue triangle", "a red triangle", "a green triangle", "a yellow triangle"]
    assert anchors[1].weight == 2.0  # the user's own anchor wins over the derived one
    assert [a.prompt for a in PromptSet((entry(explicit=("a red triangle",)),)).training_anchors()] == ["a red triangle"]
    assert PromptSet((entry(explicit=()),)).training_anchors() == ()


def test_target_moves_from_the_teacher_to_the_redirect_along_the_schedule():
    gen = torch.Generator().manual_seed(0)
    teacher = {p: torch.randn(2, 4, 8, 8, generator=gen) for p in ["a triangle", "a blue triangle"]}
    pair = entry(ramp=0.5).expand()[1]
    objective = OBJECTIVES.get("reattach")
    at = lambda progress: objective.combine(pair, teacher, TargetContext(progress, 500))  # noqa: E731
    assert torch.equal(at(0.0), teacher["a triangle"])  # step 0: the frozen model itself, no jump
    close = lambda a, b: torch.allclose(a, b, atol=1e-6)  # noqa: E731
    assert close(at(0.25), 0.5 * (teacher["a triangle"] + teacher["a blue triangle"]))
    assert close(at(0.5), teacher["a blue triangle"]) and close(at(0.9), teacher["a blue triangle"])
    assert objective.denoise_prompt(pair) == "a blue triangle"  # x_t from the redirect's own trajectory
    assert set(objective.teacher_prompts(pair)) == {"a triangle", "a blue triangle"}


@pytest.mark.parametrize("name", REDIRECT_SCHEDULES.names())
def test_every_schedule_starts_low_ends_at_one_and_never_goes_back(name):
    schedule = REDIRECT_SCHEDULES.get(name)
    for t in (0, 500, 999):
        values = [schedule(i / 20, t, 0.5) for i in range(21)]
        assert all(0.0 <= v <= 1.0 for v in values) and values[-1] == 1.0
        assert all(b >= a for a, b in zip(values, values[1:]))
    if name != "constant":
        assert schedule(0.0, 999, 0.5) == 0.0


def test_layout_first_reaches_high_noise_timesteps_before_low_noise_ones():
    schedule = REDIRECT_SCHEDULES.get("layout_first")
    assert schedule(0.2, 999, 0.5) > schedule(0.2, 0, 0.5)


def test_file_form_round_trips_through_the_metadata_summary():
    data = {"reattach": [{"caption": "a triangle", "redirect": ["a red triangle", {"prompt": "a blue triangle", "weight": 2}],
                          "explicit": "auto", "schedule": "cosine", "ramp": 0.3, "resolution": 64, "batch_size": 2}],
            "anchors": [{"prompt": ""}], "learning_rate": 1e-3}
    prompts = prompt_set_from_dict(data)
    again = prompt_set_from_dict(prompts.to_dict())
    assert [(p.positive, p.weight, p.schedule, p.ramp) for p in again.pairs()] == \
        [(p.positive, p.weight, p.schedule, p.ramp) for p in prompts.pairs()] == \
        [("a red triangle", 2 / 3, "cosine", 0.3), ("a blue triangle", 4 / 3, "cosine", 0.3)]
    assert "reattach" not in PromptSet((PromptPair("a red circle"),)).to_dict()  # other summaries are unchanged


def test_reattach_sits_beside_prompt_pairs_in_one_file():
    prompts = prompt_set_from_dict({"prompts": [{"target": "a red circle"}],
                                    "reattach": [{"caption": "a triangle", "redirect": ["a blue triangle"]}]})
    assert [p.action for p in prompts.pairs()] == ["erase", "reattach"]


BAD = [
    ({"redirect": ()}, "redirect", "empty"),
    ({"redirect": (("a triangle", 1.0),)}, "redirect[0]", "caption itself"),
    ({"redirect": (("a blue triangle", -1.0),)}, "redirect[0].weight", ">= 0"),
    ({"redirect": (("a blue triangle", 0.0),)}, "redirect", "every redirect weight is 0"),
    ({"redirect": (("  ", 1.0),)}, "redirect[0]", "empty prompt"),
    ({"schedule": "sudden"}, "schedule", "linear"),
    ({"ramp": 1.5}, "ramp", "1"),
    ({"mask_outside": "hold"}, "mask_outside", "no mask"),
    ({"mask_outside": "keep"}, "mask_outside", "ignore, hold"),
    ({"caption": " "}, "caption", "empty"),
    ({"explicit": 3}, "explicit", "auto"),
]


@pytest.mark.parametrize("overrides, field, words", BAD)
def test_bad_entries_are_refused_naming_the_field(overrides, field, words):
    with pytest.raises(SpecError) as error:
        entry(name="reattach[0]", **overrides)
    assert error.value.field == field and words in str(error.value)


def test_file_errors_name_the_entry_and_key():
    with pytest.raises(SpecError, match=r"reattach\[0\].*redirect.*missing"):
        prompt_set_from_dict({"reattach": [{"caption": "a triangle"}]})
    with pytest.raises(SpecError, match=r"reattach\[0\].*neutral.*unknown key"):
        prompt_set_from_dict({"reattach": [{"caption": "a triangle", "redirect": ["a blue triangle"], "neutral": ""}]})


def test_a_plain_pair_cannot_borrow_the_reattach_objective():
    assert "reattach" in OBJECTIVES and "reattach" not in pair_actions()
    with pytest.raises(SpecError, match=r"\[\[reattach\]\]"):
        PromptPair("a triangle", positive="a blue triangle", action="reattach")


CONFIG = TrainConfig().replace(max_denoising_steps=6, seed=3)


def make_step(backend, prompts):
    network = build_network(backend, CONFIG)
    return SliderStep(backend, network, prompts, CONFIG, backend.encode_prompts(prompts.all_prompts())), network


def test_the_step_denoises_the_redirect_and_trains_caption_and_explicit_prompts(sd1_backend, monkeypatch):
    prompts = PromptSet((entry(redirect=(("a blue triangle", 1.0),)),))
    step, network = make_step(sd1_backend, prompts)
    seen = []
    original = step._denoise
    monkeypatch.setattr(step, "_denoise", lambda plan, steps, keep_all: seen.append(plan.pair.positive) or
                        original(plan, steps, keep_all))
    with sd1_backend.training_session(), network.attached(sd1_backend.unet):
        gen = torch.Generator().manual_seed(0)
        plan = step.plan(gen)
        while plan.k == 0:
            plan = step.plan(gen)
        result = step.run(plan)
    assert seen == ["a blue triangle"]
    assert [a.prompt for a in step.anchors] == ["a blue triangle"]
    # Step 0: lambda = 0, the target is the frozen model's own caption prediction, and the adapter is zero:
    # nothing to learn yet (the ramp starts where the student is).
    assert float(result.main) == pytest.approx(0.0, abs=1e-10)


def masked_pair(**extra) -> PromptPair:
    mask = torch.zeros(64, 64)
    mask[:, :32] = 1.0
    return PromptPair("a red circle", positive="red", neutral="a circle", resolutions=((64, 64),), batch_size=2,
                      mask=mask, **extra)


def test_outside_hold_puts_the_frozen_prediction_outside_the_mask(sd1_backend):
    losses = {}
    for outside in ("hold", "ignore"):
        step, network = make_step(sd1_backend, PromptSet((masked_pair(mask_outside=outside),)))
        with sd1_backend.training_session(), network.attached(sd1_backend.unet):
            plan = step.plan(torch.Generator().manual_seed(0))
            teacher = step.teachers(plan, step.denoise(plan))
            losses[outside] = float(step.run(plan).main)
        assert ("a red circle" in teacher) == (outside == "hold")  # the outside's own teacher, only when held
    # With a zero adapter the student equals the frozen model: a held outside adds no residual there, and the
    # held loss averages over the whole image, so it is half the ignored one (the mean over the left half).
    assert losses["hold"] == pytest.approx(losses["ignore"] / 2, rel=1e-4)


def test_a_preserve_pair_holds_its_own_prompt_on_its_own_trajectory():
    pair = PromptPair("a circle", action="preserve")
    objective = OBJECTIVES.get("preserve")
    teacher = {"a circle": torch.ones(1, 4, 8, 8)}
    assert objective.teacher_prompts(pair) == ("a circle",) and objective.denoise_prompt(pair) == "a circle"
    assert torch.equal(objective.combine(pair, teacher, TargetContext(0.3, 700)), teacher["a circle"])
    assert "preserve" in pair_actions()
