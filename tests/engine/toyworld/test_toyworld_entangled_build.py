"""The entangled fine-tune resumes exactly after an interruption, and its weight file stores only what
differs from the shipped world (tiny step counts: seconds, not the real recipe)."""

import shutil

import pytest
import torch

from loba.toyworld.entangled import EntangledRecipe, build_entangled, new_word_rows
from loba.toyworld.files import DEFAULT_WEIGHTS, load_toy_components, read_toy_info
from loba.toyworld.shared_file import save_shared_checkpoint

TINY = EntangledRecipe(autoencoder_steps=4, autoencoder_batch=2, read_back_images=4, dataset_size=16, denoiser_steps=4,
                       denoiser_batch=2, save_every=2, threads=1)


class Interrupted(Exception):
    pass


def _stop_at(prefix, seen):
    def log(message):
        seen.append(message)
        if message.startswith(prefix):
            raise Interrupted(message)
    return log


def _states(components):
    return {name: getattr(components, name).state_dict() for name in ("unet", "vae", "text_encoder")}


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    return build_entangled(tmp_path_factory.mktemp("whole"), load_toy_components(), TINY, log=lambda message: None)


def test_an_interrupted_build_resumes_to_the_same_weights(tmp_path, whole):
    whole, record = whole
    seen = []
    for stop in ("autoencoder step 4/4", "denoiser step 4/4"):  # each after the step-2 checkpoint, before the next
        with pytest.raises(Interrupted):
            build_entangled(tmp_path / "resumed", load_toy_components(), TINY, log=_stop_at(stop, seen))
    resumed, _ = build_entangled(tmp_path / "resumed", load_toy_components(), TINY, log=seen.append)
    assert "autoencoder fine-tune resumes at step 2" in seen and "denoiser resumes at step 2" in seen
    expected, actual = _states(whole), _states(resumed)
    for part in expected:
        assert all(torch.equal(expected[part][key], actual[part][key]) for key in expected[part]), part
    assert record["recipe"]["denoiser_steps"] == 4 and set(record["autoencoder_read_back"]) >= {"linework", "palette"}


def test_only_new_word_rows_and_the_decoder_move(tmp_path, whole):
    shipped, (tuned, _) = load_toy_components(), whole
    rows = new_word_rows(tuned.tokenizer)
    base_text, text = shipped.text_encoder.state_dict(), tuned.text_encoder.state_dict()
    embedding = "embeddings.token_embedding.weight"
    changed = torch.nonzero((base_text[embedding] != text[embedding]).any(1)).flatten().tolist()
    assert changed and set(changed) <= set(rows)
    assert all(torch.equal(base_text[k], text[k]) for k in base_text if k != embedding)
    base_vae, vae = shipped.vae.state_dict(), tuned.vae.state_dict()
    assert all(torch.equal(base_vae[k], vae[k]) for k in base_vae if k.startswith(("encoder.", "quant_conv.")))
    # The shared file beside a copy of the base: small, and it loads back to the tuned weights (fp16).
    shutil.copy(DEFAULT_WEIGHTS, tmp_path / DEFAULT_WEIGHTS.name)
    path = save_shared_checkpoint(tmp_path / "entangled.safetensors", tuned, tmp_path / DEFAULT_WEIGHTS.name, {"world": "x"})
    info = read_toy_info(path)
    assert info["base"]["file"] == DEFAULT_WEIGHTS.name and len(info["base"]["rows"]) == 1
    assert path.stat().st_size < 0.75 * DEFAULT_WEIGHTS.stat().st_size
    loaded = _states(load_toy_components(path))
    for part, state in _states(tuned).items():
        assert all(torch.equal(state[k].half().float(), loaded[part][k]) for k in state if "position_ids" not in k), part
