"""Prompt files: LOBA's extensions to sd-scripts' format, JSON, and the round trip through to_dict."""


import json
import textwrap

from support.prompt_files import load

from loba.prompts import PromptSet, prompt_set_from_dict, training_option_keys

# --- LOBA extensions ------------------------------------------------------------------------------

def test_anchors_tables_and_strings(tmp_path):
    spec = load(tmp_path, """
        anchors = ["a photo of a dog"]

        [[prompts]]
        target = "cat"
    """)
    assert [(a.prompt, a.weight) for a in spec.anchors] == [("a photo of a dog", 1.0)]
    spec = load(tmp_path, '[[prompts]]\ntarget = "cat"\n[[anchors]]\nprompt = "a tree"\nweight = 0.5\n[[anchors]]\nprompt = ""\n')
    assert [(a.prompt, a.weight, a.name) for a in spec.anchors] == [("a tree", 0.5, "anchors[0]"), ("", 1.0, "anchors[1]")]
    assert spec.all_prompts()[-1:] == ["a tree"]


def test_anchors_under_slider_table_and_anchor_only_file(tmp_path):
    spec = load(tmp_path, '[slider]\ntarget_class = "p"\npositive = "P"\n[[slider.anchors]]\nprompt = "a cat"\n')
    assert [a.prompt for a in spec.anchors] == ["a cat"]
    only = load(tmp_path, '[[anchors]]\nprompt = "a cat"\n')
    assert only.entries == () and len(only.anchors) == 1


def test_neutrals_and_resolutions_on_plain_entries(tmp_path):
    spec = load(tmp_path, """
        [[prompts]]
        target = "cat"
        neutrals = ["", "a photo"]
        resolutions = [[512, 512], [768, 768]]
    """)
    pairs = spec.pairs()
    assert [p.neutral for p in pairs] == ["", "a photo"]
    assert all(p.resolutions == ((512, 512), (768, 768)) for p in pairs)
    assert [p.name for p in pairs] == ["prompts[0] neutral[0]", "prompts[0] neutral[1]"]


def test_training_options_are_tolerated_at_top_level(tmp_path):
    spec = load(tmp_path, """
        network_dim = 8
        learning_rate = 1e-4
        max_train_steps = 500
        [network]
        network_alpha = 4
        [optimizer]
        optimizer = "adamw"

        [[prompts]]
        target = "cat"
    """)
    assert len(spec.pairs()) == 1
    assert {"network_dim", "learning_rate", "network", "sampling", "max_denoising_steps"} <= training_option_keys()


def test_training_options_beside_slider_table(tmp_path):
    spec = load(tmp_path, 'network_dim = 8\n[slider]\ntarget_class = "p"\npositive = "P"\n')
    assert len(spec.pairs()) == 2


# --- JSON and round trip --------------------------------------------------------------------------

SLIDER_FILE = """
    guidance_scale = 2.0
    neutrals = ["", "a photo"]
    resolutions = [[512, 512], [640, 640]]

    [[targets]]
    target_class = "person"
    positive = "smiling"
    negative = "sad"
    weight = 0.5

    [[targets]]
    target_class = "person"
    negative = "old"

    [[anchors]]
    prompt = "a dog"
"""


def test_json_reads_the_same_as_toml(tmp_path):
    import tomllib

    from_toml = load(tmp_path, SLIDER_FILE)
    data = tomllib.loads(textwrap.dedent(SLIDER_FILE))
    from_json = load(tmp_path, json.dumps(data), name="prompts.json")
    assert from_json == from_toml
    assert len(from_json.pairs()) == 2 * 2 * 4 + 2 * 2 * 2


def test_to_dict_reads_back_to_the_same_set(tmp_path):
    spec = load(tmp_path, SLIDER_FILE)
    again = prompt_set_from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again.to_dict() == spec.to_dict()
    assert [p.prompts() for p in again.pairs()] == [p.prompts() for p in spec.pairs()]


def test_prompt_set_from_dict_without_files():
    spec = prompt_set_from_dict({"prompts": [{"target": "cat"}]})
    assert isinstance(spec, PromptSet) and spec.pairs()[0].target == "cat"
