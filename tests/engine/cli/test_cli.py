"""`loba train` end to end on a tiny pipeline folder: files, loss.csv, checkpoints, resume, bad input."""

import csv

import pytest
from safetensors import safe_open
from support.tiny_models import tiny_pipeline

from loba.cli.main import main

RUN = """
pretrained_model_name_or_path = "{model}"
network_dim = 2
network_alpha = 1.0
learning_rate = 1e-3
max_train_steps = 4
save_every_n_steps = 2
max_denoising_steps = 4
leco_denoise_guidance_scale = 3.0
seed = 1

[[targets]]
target_class = "a circle"
positive = "large"
negative = "small"
resolution = 64
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-sd1")
    tiny_pipeline(folder, "sd1")
    return folder


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_train_writes_slider_loss_csv_and_checkpoints_then_resumes(model_dir, tmp_path):
    run = tmp_path / "run.toml"
    run.write_text(RUN.format(model=model_dir.as_posix()))
    out = tmp_path / "out"
    assert main(["train", str(run), "--out", str(out), "--quiet"]) == 0
    slider = out / "slider.safetensors"
    with safe_open(str(slider), "pt") as handle:
        keys = list(handle.keys())
        metadata = handle.metadata()
    assert keys and all(k.startswith("lora_unet_") for k in keys)
    assert metadata["ss_network_dim"] == "2" and '"network_dim": 2' in metadata["loba_config"]
    assert [int(r["step"]) for r in read_rows(out / "loss.csv")] == [1, 2, 3, 4]
    assert (out / "checkpoints" / "step-000002.pt").is_file()

    assert main(["train", str(run), "--out", str(out), "--resume", "auto", "--set", "max_train_steps=6", "--quiet"]) == 0
    # resumed from step 2 (the newest checkpoint of the first run) to 6: rows 1-2 kept, 3-6 rewritten
    assert [int(r["step"]) for r in read_rows(out / "loss.csv")] == [1, 2, 3, 4, 5, 6]


def test_bad_input_fails_before_loading_the_model(tmp_path, capsys):
    run = tmp_path / "run.toml"
    run.write_text(RUN.format(model="/does/not/exist") + "\nnetwork_dimm = 3\n")
    assert main(["train", str(run), "--out", str(tmp_path / "out")]) == 2
    assert "network_dimm" in capsys.readouterr().err


def test_bad_prompt_entry_names_entry_and_field(tmp_path, capsys):
    run = tmp_path / "run.toml"
    run.write_text('pretrained_model_name_or_path = "/does/not/exist"\n[[prompts]]\ntarget = "x"\nresolution = 100\n')
    assert main(["train", str(run), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "prompts[0]" in err and "resolution" in err


def test_train_from_a_single_checkpoint_fileoffline_hub(model_dir, tmp_path, monkeypatch):
    from support.single_file import write_single_file_checkpoint

    checkpoint = tmp_path / "model.safetensors"
    write_single_file_checkpoint(model_dir, checkpoint, "sd1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = tmp_path / "run.toml"
    run.write_text(RUN.format(model=checkpoint.as_posix()).replace(
        "network_dim = 2", f'model_config = "{model_dir.as_posix()}"\nnetwork_dim = 2'))
    out = tmp_path / "out"
    assert main(["train", str(run), "--out", str(out), "--quiet"]) == 0
    assert (out / "slider.safetensors").is_file()


@pytest.mark.parametrize("line, field", [('optimizer = "adamx"', "optimizer"), ('loss_type = "msee"', "loss_type"),
                                         ('preset = "everything"', "preset")])
def test_unregistered_names_fail_before_loading_the_model(tmp_path, capsys, line, field):
    run = tmp_path / "run.toml"
    run.write_text(RUN.format(model="/does/not/exist").replace("seed = 1", f"seed = 1\n{line}"))
    assert main(["train", str(run), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{field}:" in err and "Registered:" in err


def test_a_model_that_cannot_be_loaded_is_named(tmp_path, capsys):
    run = tmp_path / "run.toml"
    run.write_text(RUN.format(model=(tmp_path / "missing-folder").as_posix()))
    assert main(["train", str(run), "--out", str(tmp_path / "out")]) == 2
    assert "pretrained_model_name_or_path" in capsys.readouterr().err
