"""`loba push` and push_to_hub against huggingface_hub's own client, its endpoint a local server (support/fake_hub):
the upload plan, the files and contents the server received, the model card, and bad input uploading nothing."""

from __future__ import annotations

import json
import shutil

import pytest
from huggingface_hub import ModelCard, constants
from safetensors import safe_open
from support.fake_hub import fake_hub

from loba.cli.main import main
from loba.errors import ConfigError
from loba.hub.push import push_run
from loba.toyworld.demo import recipe_path

TOKEN = "hf_test_secret_token_0123456789"
METRICS = {"weights": ["-1", "0", "1"], "seeds": [0],
           "summary": {"target": {"clip": {"score": {w: {"mean": m, "low": m - 0.1, "high": m + 0.1}
                                                     for w, m in (("-1", 0.2), ("0", 0.5), ("1", 0.8))}}}}}


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A fake Hub as huggingface_hub's endpoint, and no token anywhere unless a test sets HF_TOKEN."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with fake_hub() as record:
        monkeypatch.setattr(constants, "ENDPOINT", record.url)
        yield record


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real `loba train` folder on the toy world (2 steps, a preview), its run file and an evaluation beside it."""
    folder = tmp_path_factory.mktemp("run")
    shutil.copyfile(recipe_path("size-slider", "train"), folder / "run.toml")
    assert main(["train", str(folder / "run.toml"), "--out", str(folder), "--model", "toyworld", "--quiet",
                 "--set", "max_train_steps=2", "--preview-every", "2"]) == 0
    (folder / "eval").mkdir()
    (folder / "eval" / "metrics.json").write_text(json.dumps(METRICS))
    return folder


def test_push_uploads_slider_card_run_file_and_images(hub, run_dir, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["push", str(run_dir), "--repo", "alice/size-slider", "--private"]) == 0
    output = capsys.readouterr()
    assert TOKEN not in output.out + output.err
    assert hub.created == [{"name": "size-slider", "organization": "alice", "visibility": "private", "type": "model"}]
    assert set(hub.authorizations) == {f"Bearer {TOKEN}"}
    files = hub.files["alice/size-slider"]
    assert set(files) == {"README.md", "slider.safetensors", "run.toml", "loss.csv", "loss.png", "preview.png",
                          "eval/metrics.json"}
    assert files["slider.safetensors"] == (run_dir / "slider.safetensors").read_bytes()
    assert files["run.toml"] == (run_dir / "run.toml").read_bytes()
    newest_sample = sorted((run_dir / "samples").glob("step-*.png"))[-1]
    assert files["preview.png"] == newest_sample.read_bytes() and files["loss.png"].startswith(b"\x89PNG")
    card = ModelCard(files["README.md"].decode())
    assert {"lora", "loba", "slider"} <= set(card.data.tags)
    assert card.data.base_model is None  # the run's model is the embedded toy world: nothing the Hub could link
    with safe_open(str(run_dir / "slider.safetensors"), "pt") as handle:
        prompts = json.loads(handle.metadata()["loba_prompts"])["prompts"]
    for entry in prompts:  # every trigger prompt and its two directions
        assert f"`{entry['target_class']}`" in card.text and entry["positive"] in card.text and entry["negative"] in card.text
    assert "![loss curve](loss.png)" in card.text and "![preview grid](preview.png)" in card.text
    assert "| target | clip | score | 0.2000 [0.1000, 0.3000] | 0.5000 [0.4000, 0.6000] | 0.8000 [0.7000, 0.9000] |" in card.text
    assert "| max_train_steps | `2` |" in card.text and 'weight_name="slider.safetensors"' in card.text
    assert TOKEN.encode() not in b"".join(files.values())


def test_card_names_a_hub_base_model(hub, run_dir, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    result = push_run(run_dir, "alice/s2", base_model="stabilityai/stable-diffusion-xl-base-1.0", endpoint=hub.url)
    assert "README.md" in result.files and hub.created[0]["name"] == "s2" and hub.created[0]["visibility"] == "public"
    assert ModelCard(hub.files["alice/s2"]["README.md"].decode()).data.base_model == "stabilityai/stable-diffusion-xl-base-1.0"


@pytest.mark.parametrize("repo, message", [("not a repo/x", "not a valid Hub repo id"), ("alice/bad..name", "valid Hub repo id"),
                                           ("justaname", "USER/NAME"), ("a/b/c", "USER/NAME")])
def test_invalid_repo_id_uploads_nothing(hub, run_dir, monkeypatch, capsys, repo, message):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["push", str(run_dir), "--repo", repo]) == 2
    assert message in capsys.readouterr().err and hub.requests == []


def test_push_without_a_token_uploads_nothing(hub, run_dir, capsys):
    assert main(["push", str(run_dir), "--repo", "alice/size-slider"]) == 2
    assert "no Hugging Face token: set HF_TOKEN" in capsys.readouterr().err and hub.requests == []


def test_folder_without_a_slider_uploads_nothing(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    (tmp_path / "loss.csv").write_text("step,loss\n1,0.5\n")
    with pytest.raises(ConfigError, match="holds no slider"):
        push_run(tmp_path, "alice/x")
    with pytest.raises(ConfigError, match="is not a folder"):
        push_run(tmp_path / "missing", "alice/x")
    assert hub.requests == []


def test_push_to_hub_after_a_run_and_token_checked_before_it(hub, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run.toml"
    run.write_text('push_to_hub = "alice/after-run"\n' + recipe_path("size-slider", "train").read_text())
    command = ["train", str(run), "--out", str(tmp_path / "out"), "--model", "toyworld", "--quiet", "--set", "max_train_steps=1"]
    assert main(command) == 2  # no token: refused before any training step
    assert "no Hugging Face token" in capsys.readouterr().err and not (tmp_path / "out").exists() and hub.requests == []
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(command) == 0
    files = hub.files["alice/after-run"]
    assert files["run.toml"] == run.read_bytes() and files["slider.safetensors"] == (tmp_path / "out" / "slider.safetensors").read_bytes()


def test_bad_push_to_hub_key_fails_at_load(tmp_path, capsys):
    run = tmp_path / "run.toml"
    run.write_text('push_to_hub = "no slash"\n' + recipe_path("size-slider", "train").read_text())
    assert main(["train", str(run), "--out", str(tmp_path / "out"), "--model", "toyworld", "--quiet"]) == 2
    assert "push_to_hub: 'no slash' is not USER/NAME" in capsys.readouterr().err
