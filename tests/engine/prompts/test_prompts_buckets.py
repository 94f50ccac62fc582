"""Bucket sets and non-square sizes in prompt files; masks pick their buckets and are never stretched."""

import pytest
import torch
from PIL import Image

from loba.errors import SpecError
from loba.models.buckets import SDXL_BUCKETS
from loba.prompts import PromptPair, PromptSet, load_prompt_file


def prompt_file(tmp_path, body: str):
    path = tmp_path / "p.toml"
    path.write_text('[[prompts]]\ntarget = "a cat"\n' + body, encoding="utf-8")
    return path


def test_non_square_and_bucket_sets_in_files(tmp_path):
    (pair,) = load_prompt_file(prompt_file(tmp_path, "resolution = [832, 1216]\n")).pairs()
    assert pair.resolutions == ((832, 1216),)
    (pair,) = load_prompt_file(prompt_file(tmp_path, 'resolution = "sdxl_buckets"\n')).pairs()
    assert pair.resolutions == SDXL_BUCKETS
    assert {pair.sample_resolution(torch.Generator().manual_seed(s)) for s in range(60)} == set(SDXL_BUCKETS)


def test_a_mask_image_picks_the_buckets_of_its_shape(tmp_path):
    Image.new("L", (1216 // 16, 832 // 16), 255).save(tmp_path / "wide.png")  # 76 x 52: 19:13 landscape
    (pair,) = load_prompt_file(prompt_file(tmp_path, 'resolution = "sdxl_buckets"\nmask = "wide.png"\n')).pairs()
    assert pair.resolutions == ((832, 1216),)


@pytest.mark.parametrize("body, field", [
    ('resolution = "sdxl_buckets"\nmask = "four_three.png"\n', "mask"),  # 4:3 matches no SDXL bucket
    ('resolution = "sdxl_buckets"\nmask_box = [0, 0, 1, 0.5]\n', "mask_box"),  # a box has no aspect to pick by
    ('resolution = "sdxl"\n', "resolution"),
])
def test_bad_bucket_input_names_entry_and_field(tmp_path, body, field):
    Image.new("L", (40, 30), 255).save(tmp_path / "four_three.png")
    with pytest.raises(SpecError) as caught:
        load_prompt_file(prompt_file(tmp_path, body))
    assert (caught.value.entry, caught.value.field) == ("prompts[0]", field), str(caught.value)


def test_an_explicit_size_list_is_not_narrowed_by_the_mask_but_refused(tmp_path):
    Image.new("L", (16, 16), 255).save(tmp_path / "square.png")
    spec = load_prompt_file(prompt_file(tmp_path, 'resolutions = [[512, 512], [512, 768]]\nmask = "square.png"\n'))
    with pytest.raises(SpecError, match=r"field 'mask': is 16x16 .* trains at 768x512"):
        spec.validate()


def test_dynamic_resolution_keeps_a_mask_square():
    mask = torch.ones(16, 16)
    masked = PromptPair(target="a", resolutions=((1024, 1024),), dynamic_resolution=True, mask=mask)
    plain = PromptPair(target="a", resolutions=((1024, 1024),), dynamic_resolution=True)
    draws = [masked.sample_resolution(torch.Generator().manual_seed(s)) for s in range(20)]
    assert all(h == w and h % 64 == 0 and 512 <= h <= 1024 for h, w in draws)
    assert any(h != w for h, w in (plain.sample_resolution(torch.Generator().manual_seed(s)) for s in range(20)))
    PromptSet((masked,)).validate()
