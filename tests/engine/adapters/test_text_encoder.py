"""Text-encoder LoRA: targeting and kohya names (SD1, SDXL), joint and text-encoder-only training that learns,
leaves every model bit-identical, trains the teachers on frozen embeddings, keeps its own lr, and resumes exactly."""

import pytest
import torch
from support.backends import assert_bit_identical, snapshot
from torch import nn

from loba.adapters.targeting import select_targets
from loba.adapters.text_encoder import kohya_namer, module_namer, select_all_targets, split_name
from loba.config import TrainConfig
from loba.errors import ConfigError
from loba.prompts import AnchorPrompt, PromptPair, PromptSet
from loba.train.loop import build_network, train

PROMPTS = PromptSet(entries=(PromptPair(target="a red circle", positive="red", guidance_scale=6.0, resolutions=((64, 64),)),),
                    anchors=(AnchorPrompt("a blue square"),))
FAST = TrainConfig().replace(max_denoising_steps=4, max_train_steps=4, learning_rate=2e-3, seed=3, network_alpha=4.0)


def hooks(module: nn.Module) -> list:
    return [(name, list(m._forward_hooks), list(m._forward_pre_hooks)) for name, m in module.named_modules()]


def assert_encoder_identical(encoder: nn.Module, before: dict, hooks_before: list) -> None:
    """assert_bit_identical, except for the output-capturing hooks transformers itself installs on a first forward."""
    after = encoder.state_dict()
    assert all(torch.equal(after[name], tensor) for name, tensor in before["tensors"].items())
    assert {n: p.requires_grad for n, p in encoder.named_parameters()} == before["grad_flags"]
    assert all(p.grad is None for p in encoder.parameters())
    assert hooks(encoder) == hooks_before


def test_off_by_default_and_unet_targets_unchanged(sd1_backend):
    config = TrainConfig()
    assert config.network.train_text_encoder == "off"
    targets = select_all_targets(sd1_backend, config, select_targets)
    assert [t.name for t in targets] == [t.name for t in select_targets(sd1_backend.unet, config.network)]


@pytest.mark.parametrize("kind, prefixes", [("sd1", {"lora_te_"}), ("sdxl", {"lora_te1_", "lora_te2_"})])
def test_targets_and_kohya_names_per_family(request, kind, prefixes):
    backend = request.getfixturevalue(f"{kind}_backend")
    config = TrainConfig().replace(train_text_encoder="only")
    network = build_network(backend, config)
    assert all(split_name(name) is not None for name in network.names)  # only: no UNet layer
    stems = [kohya_namer(backend)(name) for name in network.names]
    layers = 2 * len(backend.text_encoders)  # 2 layers per tiny encoder, 6 Linear each (q k v out fc1 fc2)
    assert len(stems) == len(set(stems)) == 6 * layers
    assert {stem[:stem.index("_text_model")] + "_" for stem in stems} == prefixes
    assert "lora_te_text_model_encoder_layers_1_self_attn_q_proj" in stems or kind == "sdxl"
    back = module_namer(backend)
    assert [back(stem) for stem in stems] == network.names
    assert back("lora_te_text_model_encoder_layers_9_mlp_fc1") is None


def test_preset_exclude_and_lr(sdxl_backend):
    config = TrainConfig().replace(train_text_encoder="alongside", text_encoder_preset="mlp", text_encoder_exclude=("^lora_te2_",),
                                   text_encoder_lr=5e-5, learning_rate=1e-4)
    targets = select_all_targets(sdxl_backend, config, select_targets)
    text = [t for t in targets if split_name(t.name)]
    assert len(text) == 4 and all(t.name.startswith("te1:") and ".mlp.fc" in t.name for t in text)
    assert {t.lr_multiplier for t in text} == {0.5}
    assert {t.lr_multiplier for t in targets if not split_name(t.name)} == {1.0}
    with pytest.raises(ConfigError, match="text_encoder_exclude"):
        select_all_targets(sdxl_backend, config.replace(text_encoder_exclude=("lora_te",)), select_targets)


@pytest.mark.parametrize("mode", ["alongside", "only"])
def test_training_moves_the_text_adapters_and_leaves_models_bit_identical(sd1_backend, mode):
    frozen = sd1_backend.encode_prompts(["a red circle"])["a red circle"].context
    encoder = sd1_backend.text_encoders[0]
    before = [snapshot(sd1_backend.unet), snapshot(encoder), hooks(encoder)]
    result = train(sd1_backend, PROMPTS, FAST.replace(train_text_encoder=mode))
    assert result.steps_done == FAST.max_train_steps
    moved = {name: bool(lora.lora_up.weight.detach().abs().sum() > 0) for name, lora in result.network.items()}
    assert any(moved[n] for n in moved if split_name(n)), "no text-encoder adapter learned"
    assert any(split_name(n) is None for n in moved) == (mode == "alongside")
    assert_bit_identical(sd1_backend.unet, before[0])
    assert_encoder_identical(encoder, before[1], before[2])
    # The adapters change the student's encoding only while attached at a nonzero multiplier.
    root = result.network
    from loba.adapters.text_encoder import adapter_root

    with root.attached(adapter_root(sd1_backend, root.names)):
        root.multiplier = 0.0
        assert torch.equal(sd1_backend.encode_prompts(["a red circle"])["a red circle"].context, frozen)
        root.multiplier = 1.0
        assert not torch.equal(sd1_backend.encode_prompts(["a red circle"])["a red circle"].context, frozen)


def test_teachers_use_frozen_embeddings_student_gets_grad(sd1_backend):
    from loba.adapters.text_encoder import adapter_root
    from loba.train.step import SliderStep

    network = build_network(sd1_backend, FAST.replace(train_text_encoder="only"))
    cached = sd1_backend.encode_prompts(PROMPTS.all_prompts())
    step = SliderStep(sd1_backend, network, PROMPTS, FAST, cached)
    calls = []
    original = sd1_backend.encode_prompts_trainable
    sd1_backend.encode_prompts_trainable = lambda prompts: calls.append((list(prompts), network.multiplier)) or original(prompts)
    with network.attached(adapter_root(sd1_backend, network.names)):
        step.run(step.plan(torch.Generator().manual_seed(0))).loss.backward()
    # FAST denoises with the adapter: the pair's two prompts at its multiplier; then the student's with grad.
    assert calls == [(["", "a red circle"], 1.0), (["a red circle", "a blue square"], 1.0)]
    assert all(lora.lora_up.weight.grad is not None for _, lora in network.items())


def test_resume_is_exact_with_text_encoder(sd1_backend, tmp_path):
    config = FAST.replace(train_text_encoder="alongside", text_encoder_lr=1e-3, max_train_steps=4, save_every_n_steps=2)
    full = train(sd1_backend, PROMPTS, config, out_dir=tmp_path / "a")
    resumed = train(sd1_backend, PROMPTS, config, out_dir=tmp_path / "c", resume=tmp_path / "a" / "checkpoints" / "step-000002.pt")
    assert any(split_name(name) for name in resumed.network.names)
    for (name, a), (_, b) in zip(full.network.items(), resumed.network.items()):
        assert torch.equal(a.lora_up.weight, b.lora_up.weight), name


def test_sdxl_trains_both_encoders(sdxl_backend):
    before = [snapshot(sdxl_backend.unet)]
    result = train(sdxl_backend, PROMPTS, FAST.replace(train_text_encoder="only", max_train_steps=2))
    moved = {name.split(":")[0] for name, lora in result.network.items() if bool(lora.lora_up.weight.detach().abs().sum() > 0)}
    assert moved == {"te1", "te2"}  # CLIP-L's context and CLIP-G's context and pooled embedding both reach the loss
    assert_bit_identical(sdxl_backend.unet, before[0])
    assert all(p.grad is None and p.requires_grad for e in sdxl_backend.text_encoders for p in e.parameters())
