"""A Hub id as the base model: revision, variant, subfolder and local_files_only from the run file reach every
from_pretrained / hf_hub_download call (variant only where weights load), with the network cut off: the calls are
recorded and answered from a local tiny pipeline folder, so nothing can download."""

from __future__ import annotations

import socket

import pytest
from support.tiny_models import tiny_pipeline

from loba.cli.main import main
from loba.config.runfile import load_run_file
from loba.errors import ConfigError
from loba.models.sources import ModelSource, load_backend

RUN = """
pretrained_model_name_or_path = "alice/tiny-sd"
revision = "v2"
variant = "fp16"
subfolder = "pipe"
local_files_only = true

[[targets]]
target_class = "a circle"
positive = "large"
negative = "small"
resolution = 64
"""


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    """Every loader of the pipeline, recording (loader, id, kwargs) and loading from tmp_path/pipe instead."""
    import diffusers
    import huggingface_hub
    import transformers

    tiny_pipeline(tmp_path / "pipe", "sd1")
    calls = []

    def no_network(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)

    def fake(owner, name):
        original = getattr(owner, name)

        def loader(path, *args, **kwargs):
            calls.append((f"{owner.__name__}.{name}", path, dict(kwargs)))
            local = {k: v for k, v in kwargs.items() if k not in ("revision", "variant")}  # the folder has neither
            return original(str(tmp_path), *args, **local)

        monkeypatch.setattr(owner, name, loader)

    for owner in (diffusers.DDPMScheduler, diffusers.UNet2DConditionModel, diffusers.AutoencoderKL,
                  transformers.CLIPTextModel, transformers.CLIPTokenizer):
        fake(owner, "load_config" if owner is diffusers.DDPMScheduler else "from_pretrained")

    def download(repo_id, filename, subfolder=None, **kwargs):
        calls.append(("hf_hub_download", repo_id, {"filename": filename, "subfolder": subfolder, **kwargs}))
        return str(tmp_path / subfolder / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    return calls


def test_hub_location_reaches_every_loader(tmp_path, recorded):
    (tmp_path / "run.toml").write_text(RUN)
    run = load_run_file(tmp_path / "run.toml")
    backend = load_backend(ModelSource(run.model, hub=run.hub, with_vae=True))
    assert backend.family == "sd1"
    by_loader = {}
    for loader, path, kwargs in recorded:
        assert path == "alice/tiny-sd" and kwargs["revision"] == "v2" and kwargs["local_files_only"] is True, loader
        by_loader.setdefault(loader, []).append(kwargs)
    weights = ("UNet2DConditionModel.from_pretrained", "CLIPTextModel.from_pretrained", "AutoencoderKL.from_pretrained")
    for loader in weights:
        assert [k["variant"] for k in by_loader[loader]] == ["fp16"], loader
    for loader in ("DDPMScheduler.load_config", "CLIPTokenizer.from_pretrained", "hf_hub_download"):
        assert all("variant" not in k for k in by_loader[loader]), loader
    subfolders = {k["subfolder"] for loader in by_loader for k in by_loader[loader] if loader != "hf_hub_download"}
    assert subfolders == {"pipe/scheduler", "pipe/unet", "pipe/text_encoder", "pipe/tokenizer", "pipe/vae"}
    assert {(k["filename"], k["subfolder"]) for k in by_loader["hf_hub_download"]} == {("model_index.json", "pipe")}


def test_hub_model_flag_and_bad_keys(tmp_path, capsys):
    (tmp_path / "run.toml").write_text(RUN.replace('revision = "v2"', "revision = 3"))
    with pytest.raises(ConfigError, match="revision: expected a non-empty string"):
        load_run_file(tmp_path / "run.toml")
    (tmp_path / "run.toml").write_text(RUN)
    assert main(["train", str(tmp_path / "run.toml"), "--out", str(tmp_path / "out"), "--hub-model", "not valid/..x"]) == 2
    assert "--hub-model: 'not valid/..x' is not a valid Hub repo id" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
