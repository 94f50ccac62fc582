"""Loss masks: image files, boxes, their use in prompt files, and resizing to latent size."""

import pytest
import torch
from PIL import Image

from loba.errors import SpecError
from loba.prompts import box_mask, load_mask_image, load_prompt_file, mask_to_latent


def write_mask_png(path, width=16, height=8, white_cols=8):
    image = Image.new("L", (width, height), 0)
    image.paste(255, (0, 0, white_cols, height))
    image.save(path)
    return path


def test_load_mask_image_is_grayscale_0_to_1(tmp_path):
    mask = load_mask_image(write_mask_png(tmp_path / "m.png"))
    assert mask.shape == (8, 16) and mask.dtype == torch.float32
    assert mask[:, :8].eq(1).all() and mask[:, 8:].eq(0).all()


def test_load_mask_image_converts_color(tmp_path):
    Image.new("RGB", (4, 2), (255, 255, 255)).save(tmp_path / "rgb.png")
    assert load_mask_image(tmp_path / "rgb.png").eq(1).all()
    Image.new("L", (4, 2), 128).save(tmp_path / "gray.png")
    assert load_mask_image(tmp_path / "gray.png")[0, 0].item() == pytest.approx(128 / 255)


def test_box_mask_covers_the_fractions():
    mask = box_mask(8, 16, [0.0, 0.25, 0.5, 0.75])
    assert mask.shape == (8, 16)
    assert mask[:4, 4:12].eq(1).all() and mask.sum().item() == 4 * 8


def test_tiny_box_keeps_at_least_one_pixel():
    assert box_mask(8, 8, [0.5, 0.5, 0.51, 0.51]).sum().item() == 1


@pytest.mark.parametrize("box", [[0, 0, 1], [0.5, 0, 0.2, 1], [0, 0, 1, 1.5], ["0", 0, 1, 1], [0, 0, 1, True], "0,0,1,1"])
def test_bad_boxes_raise_value_error(box):
    with pytest.raises(ValueError, match="top|left|fractions"):
        box_mask(8, 8, box)


def test_mask_file_in_prompt_file_is_relative_to_it(tmp_path):
    (tmp_path / "masks").mkdir()
    write_mask_png(tmp_path / "masks" / "left.png")
    path = tmp_path / "p.toml"
    path.write_text('[[prompts]]\ntarget = "cat"\nmask = "masks/left.png"\n', encoding="utf-8")
    (pair,) = load_prompt_file(path).pairs()
    assert pair.mask.shape == (8, 16) and pair.mask.mean().item() == pytest.approx(0.5)


def test_mask_box_is_drawn_at_the_first_resolution(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[[targets]]\ntarget_class = "a"\npositive = "P"\nresolutions = [[64, 128], [512, 512]]\n'
                    'mask_box = [0.0, 0.0, 1.0, 0.5]\n', encoding="utf-8")
    spec = load_prompt_file(path)
    assert spec.entries[0].mask.shape == (64, 128)
    assert all(p.mask is not None and p.mask.mean().item() == pytest.approx(0.5) for p in spec.pairs())


def test_top_level_mask_is_a_default_for_every_entry(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('mask_box = [0, 0, 0.5, 1]\n[[prompts]]\ntarget = "a"\n[[prompts]]\ntarget = "b"\nmask_box = [0, 0, 1, 1]\n',
                    encoding="utf-8")
    first, second = load_prompt_file(path).pairs()
    assert first.mask.mean().item() == pytest.approx(0.5) and second.mask.mean().item() == 1.0


@pytest.mark.parametrize("entry_text, field", [
    ('mask = "missing.png"\n', "mask"),
    ('mask = "not_an_image.png"\n', "mask"),
    ('mask = "black.png"\n', "mask"),
    ('mask = 3\n', "mask"),
    ('mask = "black.png"\nmask_box = [0, 0, 1, 1]\n', "mask"),
    ('mask_box = [0, 0, 1]\n', "mask_box"),
    ('mask_box = [0.9, 0, 0.1, 1]\n', "mask_box"),
    ('mask = { shape = [8, 8], mean = 0.5 }\n', "mask"),
])
def test_bad_masks_in_files_name_entry_and_field(tmp_path, entry_text, field):
    (tmp_path / "not_an_image.png").write_text("hello", encoding="utf-8")
    Image.new("L", (8, 8), 0).save(tmp_path / "black.png")
    path = tmp_path / "p.toml"
    path.write_text('[[prompts]]\ntarget = "a"\n' + entry_text, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_prompt_file(path)
    assert (caught.value.entry, caught.value.field) == ("prompts[0]", field), str(caught.value)


# --- mask_to_latent ------------------------------------------------------------------------------

def test_downsizing_averages_areas():
    mask = torch.zeros(8, 8)
    mask[:, :4] = 1
    mask[:, 4] = 1  # one image column covers half of latent column 2
    latent = mask_to_latent(mask, (4, 4))
    assert latent.shape == (1, 1, 4, 4)
    assert latent[0, 0, 0].tolist() == [1.0, 1.0, 0.5, 0.0]


def test_batched_masks_keep_the_batch():
    masks = torch.stack([torch.ones(16, 16), torch.zeros(16, 16)])
    latent = mask_to_latent(masks, (2, 2))
    assert latent.shape == (2, 1, 2, 2) and latent[0].eq(1).all() and latent[1].eq(0).all()


def test_upsizing_is_bilinear_and_stays_in_range():
    mask = torch.tensor([[0.0, 1.0]])
    latent = mask_to_latent(mask, (1, 4))
    assert latent[0, 0, 0].tolist() == [0.0, 0.25, 0.75, 1.0]
    assert latent.min() >= 0 and latent.max() <= 1


def test_mixed_resize_and_same_size_do_not_touch_the_input():
    mask = torch.rand(8, 2)
    original = mask.clone()
    assert mask_to_latent(mask, (4, 4)).shape == (1, 1, 4, 4)
    same = mask_to_latent(mask, (8, 2))
    assert torch.equal(same[0, 0], original)
    same.zero_()
    assert torch.equal(mask, original)


def test_mask_to_latent_rejects_bad_rank():
    with pytest.raises(ValueError, match="mask must be"):
        mask_to_latent(torch.ones(1, 1, 4, 4), (2, 2))
