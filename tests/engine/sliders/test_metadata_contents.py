"""A slider's metadata (which ComfyUI serves at /view_metadata) holds the config and the prompts, never the
contents of other files a prompt file named: a mask is a shape and a mean, not pixels or a path."""

import json
from types import SimpleNamespace

from PIL import Image

from loba.config import TrainConfig
from loba.prompts import prompt_set_from_dict
from loba.sliders.metadata import slider_metadata

KEYS = {"loba_version", "loba_config", "loba_prompts", "ss_base_model_version", "ss_v2", "ss_v_parameterization",
        "ss_steps", "ss_learning_rate", "ss_seed", "ss_training_comment", "loba_family"}


def test_metadata_holds_prompts_and_a_mask_summary_only(tmp_path):
    Image.new("L", (16, 16), 200).save(tmp_path / "region_mask_file.png")
    (tmp_path / "neutrals.txt").write_text("a photo\n\na drawing\n")
    prompts = prompt_set_from_dict({"prompts": [{"target": "cat", "mask": "region_mask_file.png",
                                                 "neutral_prompt_file": "neutrals.txt"}]}, tmp_path)
    metadata = slider_metadata(TrainConfig(), prompts, SimpleNamespace(family="sd1", prediction_type="epsilon"), 3)
    assert set(metadata) == KEYS
    text = json.dumps(metadata)
    assert "region_mask_file" not in text and "neutrals.txt" not in text and str(tmp_path) not in text
    stored = json.loads(metadata["loba_prompts"])
    assert [entry["neutral"] for entry in stored["prompts"]] == ["a photo", "a drawing"]
    assert stored["prompts"][0]["mask"] == {"shape": [16, 16], "mean": round(200 / 255, 6)}
