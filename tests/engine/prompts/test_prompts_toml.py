"""Prompt files: every sd-scripts LECO TOML form (format A [[prompts]], format B [[targets]])."""


from support.prompt_files import load, table

from loba.prompts import PromptPair, SliderTarget

# --- format A: [[prompts]] -----------------------------------------------------------------------

def test_sd_scripts_original_example(tmp_path):
    spec = load(tmp_path, """
        [[prompts]]
        target = "van gogh"
        positive = "van gogh"
        unconditional = ""
        neutral = ""
        action = "erase"
        guidance_scale = 1.0
        resolution = 512
        batch_size = 1
        multiplier = 1.0
        weight = 1.0
    """)
    assert spec.pairs() == [PromptPair("van gogh", name="prompts[0]")]


def test_prompt_defaults_when_keys_are_absent(tmp_path):
    (pair,) = load(tmp_path, '[[prompts]]\ntarget = "cat"\nunconditional = "blurry"\n').pairs()
    settings = (pair.positive, pair.neutral, pair.action, pair.guidance_scale, pair.resolutions)
    assert settings == ("cat", "blurry", "erase", 1.0, ((512, 512),))
    assert (pair.dynamic_resolution, pair.batch_size, pair.dynamic_crops, pair.multiplier, pair.weight) == (False, 1, False, 1.0, 1.0)


def test_format_a_top_level_keys_are_defaults_and_entries_override(tmp_path):
    pairs = load(tmp_path, """
        guidance_scale = 2.0
        resolution = [512, 768]
        action = "enhance"
        neutral = "a photo"
        batch_size = 2
        dynamic_resolution = true
        dynamic_crops = true
        multiplier = 0.5
        weight = 3.0

        [[prompts]]
        target = "cat"

        [[prompts]]
        target = "dog"
        action = "erase"
        resolution = 640
        neutral = ""
    """).pairs()
    cat, dog = pairs
    assert (cat.guidance_scale, cat.resolutions, cat.action, cat.neutral, cat.batch_size) == (2.0, ((512, 768),), "enhance", "a photo", 2)
    assert (cat.dynamic_resolution, cat.dynamic_crops, cat.multiplier, cat.weight) == (True, True, 0.5, 3.0)
    assert (dog.action, dog.resolutions, dog.neutral, dog.guidance_scale) == ("erase", ((640, 640),), "", 2.0)
    assert (cat.name, dog.name) == ("prompts[0]", "prompts[1]")


def test_slider_entry_inside_prompts_uses_only_its_own_neutral(tmp_path):
    spec = load(tmp_path, """
        neutral = "top"
        guidance_scale = 4.0

        [[prompts]]
        target = "cat"

        [[prompts]]
        target_class = "person"
        positive = "smiling"
        negative = "sad"

        [[prompts]]
        target_class = "person"
        negative = "old"
        neutral = "own"
    """)
    assert isinstance(spec.entries[1], SliderTarget) and spec.entries[1].neutrals == ("",)
    assert spec.entries[1].guidance_scale == 4.0
    assert spec.entries[2].neutrals == ("own",)
    pairs = spec.pairs()
    assert pairs[0].neutral == "top" and len(pairs) == 1 + 4 + 2


# --- format B: [[targets]] -----------------------------------------------------------------------

def test_sd_scripts_slider_example_top_level_targets(tmp_path):
    spec = load(tmp_path, """
        guidance_scale = 1.0
        resolution = 1024
        neutral = ""

        [[targets]]
        target_class = "1girl"
        positive = "1girl, long hair"
        negative = "1girl, short hair"
        multiplier = 1.0
        weight = 1.0
    """)
    (slider,) = spec.entries
    assert slider == SliderTarget("1girl", "1girl, long hair", "1girl, short hair", resolutions=1024, name="targets[0]")
    assert table(spec.pairs()) == [
        ("1girl", "1girl, short hair", "1girl, long hair", "", "erase", 1.0),
        ("1girl", "1girl, long hair", "1girl, short hair", "", "enhance", 1.0),
        ("1girl", "1girl, long hair", "1girl, short hair", "", "erase", -1.0),
        ("1girl", "1girl, short hair", "1girl, long hair", "", "enhance", -1.0)]


def test_slider_table_with_targets_and_defaults(tmp_path):
    spec = load(tmp_path, """
        [slider]
        guidance_scale = 3.0
        multiplier = 2.0
        batch_size = 2

        [[slider.targets]]
        target_class = "car"
        positive = "red car"

        [[slider.targets]]
        target_class = "car"
        negative = "old car"
        multiplier = 1.0
    """)
    first, second = spec.entries
    assert (first.guidance_scale, first.multiplier, first.batch_size, first.name) == (3.0, 2.0, 2, "targets[0]")
    assert second.multiplier == 1.0
    assert [p.multiplier for p in spec.pairs()] == [2.0, -2.0, 1.0, -1.0]


def test_single_table_slider_at_top_level_and_under_slider(tmp_path):
    top = load(tmp_path, 'target_class = "person"\npositive = "happy"\nneutrals = ["a", "b"]\n')
    under = load(tmp_path, '[slider]\ntarget_class = "person"\npositive = "happy"\nneutrals = ["a", "b"]\n')
    assert len(top.pairs()) == len(under.pairs()) == 2 * 2
    assert top.entries[0].neutrals == ("a", "b") and under.entries[0].name == "slider"


def test_single_table_plain_entry(tmp_path):
    spec = load(tmp_path, 'target = "van gogh"\naction = "erase"\nguidance_scale = 2\n')
    assert table(spec.pairs()) == [("van gogh", "van gogh", "", "", "erase", 1.0)]


def test_top_level_neutrals_list_expands_every_target(tmp_path):
    spec = load(tmp_path, """
        guidance_scale = 1.5
        resolution = 1024
        neutrals = ["", "photo of a person", "cinematic portrait"]

        [[targets]]
        target_class = "person"
        positive = "smiling person"
        negative = "expressionless person"
    """)
    pairs = spec.pairs()
    assert len(pairs) == 3 * 4
    assert [p.neutral for p in pairs[::4]] == ["", "photo of a person", "cinematic portrait"]
    assert all(p.guidance_scale == 1.5 and p.resolutions == ((1024, 1024),) for p in pairs)


def test_neutral_files_add_up_at_top_level(tmp_path):
    (tmp_path / "neutrals.txt").write_text("  a photo  \n\nportrait\n", encoding="utf-8")
    (tmp_path / "more.txt").write_text("landscape\n", encoding="utf-8")
    spec = load(tmp_path, """
        neutrals = ["x"]
        neutral_prompt_file = "neutrals.txt"
        prompt_file = "more.txt"
        neutral = "ignored"

        [[targets]]
        target_class = ""
        positive = "high detail"
        negative = "low detail"
    """)
    assert spec.entries[0].neutrals == ("x", "a photo", "portrait", "landscape")


def test_per_target_neutral_sources_override_in_sd_scripts_order(tmp_path):
    (tmp_path / "n.txt").write_text("file one\nfile two\n", encoding="utf-8")
    (tmp_path / "p.txt").write_text("prompt file\n", encoding="utf-8")
    spec = load(tmp_path, """
        neutrals = ["shared"]

        [[targets]]
        target_class = "a"
        positive = "P"

        [[targets]]
        target_class = "b"
        positive = "P"
        neutrals = ["own list"]
        neutral = "loses to neutrals"

        [[targets]]
        target_class = "c"
        positive = "P"
        neutral_prompt_file = "n.txt"
        prompt_file = "p.txt"

        [[targets]]
        target_class = "d"
        positive = "P"
        prompt_file = "p.txt"

        [[targets]]
        target_class = "e"
        positive = "P"
        neutral = "own neutral"
    """)
    assert [e.neutrals for e in spec.entries] == [("shared",), ("own list",), ("file one", "file two"), ("prompt file",), ("own neutral",)]


def test_top_level_neutral_when_no_list(tmp_path):
    spec = load(tmp_path, 'neutral = "base"\n[[targets]]\ntarget_class = "a"\nnegative = "N"\n')
    assert spec.entries[0].neutrals == ("base",)


def test_resolutions_list_and_entry_resolution_wins(tmp_path):
    spec = load(tmp_path, """
        resolutions = [[512, 512], [768, 1024]]

        [[targets]]
        target_class = "a"
        positive = "P"

        [[targets]]
        target_class = "b"
        positive = "P"
        resolution = 640

        [[targets]]
        target_class = "c"
        positive = "P"
        resolutions = [512, 768]
    """)
    assert [e.resolutions for e in spec.entries] == [((512, 512), (768, 1024)), ((640, 640),), ((512, 768),)]
    assert len(spec.pairs()) == 2 * 2 + 2 + 2


def test_plain_prompt_entries_under_targets_take_prompt_defaults(tmp_path):
    spec = load(tmp_path, """
        [slider]
        unconditional = "ugly"
        action = "enhance"
        guidance_scale = 2.0

        [[slider.targets]]
        target = "beautiful"

        [[slider.targets]]
        target = "sharp"
        action = "erase"
    """)
    assert all(isinstance(e, PromptPair) for e in spec.entries)
    assert table(spec.pairs()) == [("beautiful", "beautiful", "ugly", "ugly", "enhance", 1.0),
                                   ("sharp", "sharp", "ugly", "ugly", "erase", 1.0)]
    assert spec.pairs()[0].guidance_scale == 2.0 and spec.pairs()[1].name == "targets[1]"
