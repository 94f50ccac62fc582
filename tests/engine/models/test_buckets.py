"""Aspect buckets: the SDXL table, the family side rules and how a mask picks its buckets."""

import pytest

from loba.errors import SpecError
from loba.models.buckets import (
    BUCKET_CHOICES,
    SD_BUCKETS,
    SDXL_BUCKETS,
    buckets_for_mask,
    check_family_sizes,
    family_size_problem,
    sizes_for_choice,
)


def test_sdxl_buckets_are_its_trained_sizes():
    assert (1024, 1024) in SDXL_BUCKETS and (832, 1216) in SDXL_BUCKETS and (1536, 640) in SDXL_BUCKETS
    for height, width in SDXL_BUCKETS:
        assert height % 64 == 0 and width % 64 == 0
        assert 0.9 < height * width / 1024**2 < 1.05  # about one megapixel each
        assert (width, height) in SDXL_BUCKETS  # every landscape has its portrait
    assert SD_BUCKETS == tuple((h // 2, w // 2) for h, w in SDXL_BUCKETS)
    assert all(h % 8 == 0 and w % 8 == 0 for h, w in SD_BUCKETS)


@pytest.mark.parametrize("size, family, ok", [
    ((832, 1216), "sdxl", True), ((1000, 1000), "sdxl", False), ((520, 512), "sdxl", False),
    ((520, 512), "sd1", True), ((516, 512), "sd1", False), ((608, 416), "sd2", True), ((608, 416), "sdxl", False),
])
def test_family_side_rules(size, family, ok):
    assert (family_size_problem(size, family) is None) == ok


def test_family_refusal_names_entry_field_and_a_fix():
    with pytest.raises(SpecError, match=r"pair, field 'resolution': 1000x1000 .*multiple of 64.*use e.g. 1024x1024.*1216x832"):
        check_family_sizes([(1000, 1000)], "sdxl", "pair", "resolution")
    with pytest.raises(SpecError, match=r"512x516 .*multiple of 8"):
        check_family_sizes([(516, 512)], "sd1", "pair", "resolution")


def test_a_mask_picks_the_buckets_of_its_aspect_ratio():
    assert buckets_for_mask((13, 19), SDXL_BUCKETS, "e") == ((832, 1216),)  # 19:13 landscape
    assert buckets_for_mask((64, 64), SDXL_BUCKETS, "e") == ((1024, 1024),)
    with pytest.raises(SpecError, match=r"e, field 'mask': is 400x300 .*matches no bucket.*nearest is 1152x896"):
        buckets_for_mask((300, 400), SDXL_BUCKETS, "e")  # 4:3 lies between 1152x896 and 1216x832


def test_node_choices():
    assert sizes_for_choice("square", 0, None, "e") == ()
    assert sizes_for_choice("square", 512, None, "e") == ((512, 512),)
    assert sizes_for_choice("SDXL 1216x832 landscape", 0, None, "e") == ((832, 1216),)
    assert sizes_for_choice("SDXL 832x1216 portrait", 0, (1216, 832), "e") == ((1216, 832),)
    assert sizes_for_choice("SDXL: all buckets", 0, None, "e") == SDXL_BUCKETS
    assert sizes_for_choice("SD1/SD2: all buckets", 0, (9, 16), "e") == ((384, 672),)
    assert len(BUCKET_CHOICES) == 1 + 2 * (1 + len(SDXL_BUCKETS))


@pytest.mark.parametrize("choice, side, mask, field", [
    ("SDXL 1216x832 landscape", 512, None, "resolution"),  # two sizes given: which one?
    ("SDXL 1216x832 landscape", 0, (64, 64), "mask"),  # a square mask on a landscape bucket would stretch
    ("SDXL: all buckets", 0, (300, 400), "mask"),
    ("1216x832", 0, None, "bucket"),
])
def test_bad_node_choices_name_the_field(choice, side, mask, field):
    with pytest.raises(SpecError) as error:
        sizes_for_choice(choice, side, mask, "e")
    assert error.value.field == field
