"""The shipped toy model: its autoencoder keeps every attribute readable, its build record shows it
competent, and a small fresh sample agrees. These run on the committed weights file."""

import numpy as np
import pytest
import torch

from loba.toyworld.captions import all_full_prompts, parse_caption
from loba.toyworld.competence import THRESHOLDS
from loba.toyworld.files import DEFAULT_WEIGHTS, load_toy_components, read_toy_info
from loba.toyworld.reader import read_batch, read_batch_float
from loba.toyworld.render import render_batch
from loba.toyworld.sampling import ToySampler
from loba.toyworld.train_autoencoder import images_to_tensor

ATTRIBUTES = ("shape", "color", "size", "background")


@pytest.fixture(scope="module")
def shipped():
    assert DEFAULT_WEIGHTS.is_file(), "the toy model's weights must be committed (loba toyworld build)"
    return load_toy_components()


def test_weights_file_fits_the_budget():
    assert DEFAULT_WEIGHTS.stat().st_size <= 25 * 1024 * 1024


def test_the_reader_recovers_attributes_after_the_autoencoder(shipped):
    images, _ = render_batch(500, seed=424242)  # seeds the build never used
    truth = read_batch(images)
    with torch.no_grad():
        decoded = shipped.vae.decode(shipped.vae.encode(images_to_tensor(images)).latent_dist.mean).sample
    reads = read_batch_float(decoded.clamp(-1, 1), value_range=(-1.0, 1.0))
    for name in ATTRIBUTES:
        accuracy = np.mean([getattr(a, name) == getattr(b, name) for a, b in zip(reads, truth)])
        assert accuracy >= 0.98, (name, accuracy)


def test_the_build_record_shows_a_competent_model():
    competence = read_toy_info(DEFAULT_WEIGHTS)["competence"]
    assert competence["samples_per_prompt"] >= 64 and competence["competent"]
    for name, bar in THRESHOLDS.items():
        assert competence["accuracy"][name] >= bar, name


def test_a_fresh_small_sample_agrees_with_the_record(shipped):
    # 2 samples per fully specified prompt (96 images): a sanity check with slack, not the measurement itself.
    prompts = [p for p in all_full_prompts() for _ in range(2)]
    reads = read_batch(ToySampler(shipped).sample(prompts, list(range(5000, 5000 + len(prompts)))))
    for name, bar in THRESHOLDS.items():
        accuracy = np.mean([getattr(r, name) == parse_caption(p)[name] for p, r in zip(prompts, reads)])
        assert accuracy >= bar - 0.1, (name, accuracy)
