"""`loba convert-args`: sd-scripts LECO command lines (the LECO guide's own examples) become run files that
`loba train` reads with the same meaning; what LOBA cannot do is refused with sd-scripts' reason."""

from __future__ import annotations

import shlex

import pytest

from loba.cli.convert_args import parse_command_line
from loba.cli.main import main
from loba.config.runfile import load_run_file

# The SDXL example of sd-scripts' docs/train_leco.md, plus LyCORIS, dropout and per-block options.
SDXL_LINE = ('accelerate launch --mixed_precision bf16 sdxl_train_leco.py --pretrained_model_name_or_path="sdxl_model.safetensors" '
             '--prompts_file="slider.toml" --output_dir="output" --output_name="my_sdxl_slider" --network_dim=8 --network_alpha=4 '
             '--learning_rate=1e-4 --optimizer_type="AdamW8bit" --max_train_steps=1000 --max_denoising_steps=40 '
             '--mixed_precision=bf16 --sdpa --gradient_checkpointing --save_every_n_steps=200 --save_precision fp16 '
             '--network_module lycoris.kohya --network_args algo=lokr conv_dim=4 conv_alpha=1 --optimizer_args weight_decay=0.01 '
             '--clip_skip 2 --unet_lr=2e-4 --fp8_base')
PROMPTS = '[[targets]]\ntarget_class = "1girl"\npositive = "1girl, long hair"\nnegative = "1girl, short hair"\n'


def test_the_guides_sdxl_command_line_converts_and_loads(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "slider.toml").write_text(PROMPTS)
    (tmp_path / "runs").mkdir()
    assert main(["convert-args", "--out", "runs/run.toml", "--", *shlex.split(SDXL_LINE)]) == 0
    assert "loba train runs/run.toml" in capsys.readouterr().out
    run = load_run_file(tmp_path / "runs" / "run.toml")
    assert run.output_dir == "../output"  # sd-scripts' output_dir is the working folder's, the run file's own folder here
    config = run.config
    assert (run.model, run.sdxl, run.clip_skip, run.output_name) == ("sdxl_model.safetensors", True, 2, "my_sdxl_slider")
    assert run.fp8_base is True
    assert (config.network.network_dim, config.network.network_alpha, config.network.algo, config.network.conv_dim) == (8, 4.0, "lokr", 4)
    assert (config.optimizer.optimizer, config.optimizer.learning_rate, config.optimizer.optimizer_args) == \
        ("adamw8bit", 2e-4, {"weight_decay": 0.01})
    assert (config.max_train_steps, config.sampling.max_denoising_steps, config.save_every_n_steps) == (1000, 40, 200)
    assert (config.mixed_precision, config.gradient_checkpointing, config.save_precision) == ("bf16", True, "fp16")
    assert len(run.prompts.entries) == 1


def test_the_sd1_example_and_flags():
    table = parse_command_line(shlex.split(
        "train_leco.py --pretrained_model_name_or_path=model.safetensors --prompts_file=prompts.toml --v2 "
        "--v_parameterization --zero_terminal_snr --network_dropout 0.1 --output_name 123"))
    assert "sdxl" not in table
    assert table["v2"] is table["v_parameterization"] is table["zero_terminal_snr"] is True
    assert table["network_dropout"] == 0.1 and table["output_name"] == "123"
    assert parse_command_line(["train_leco.py --network_args 'conv_dim=4' --seed 3"]) == {"network_args": ["conv_dim=4"], "seed": 3}


@pytest.mark.parametrize("line, message", [
    ("train_leco.py --max_train_epochs 10", "--max_train_epochs is not supported for LECO"),
    ("train_network.py --network_dim 4", "not an sd-scripts LECO script"),
    ("train_leco.py --no_such_option 1", "--no_such_option is not an sd-scripts LECO option"),
    ("train_leco.py --network_dim", "needs a value"),
])
def test_refusals(tmp_path, capsys, line, message):
    assert main(["convert-args", "--out", str(tmp_path / "r.toml"), line]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r.toml").exists()


def test_a_converted_command_line_trains_with_output_name_and_output_dir(tmp_path, monkeypatch):
    """The converted file runs as printed: output_dir stands in for --out, output_name names the slider, and the
    LoHa network_args and ema_decay reach the files (NAME-ema beside NAME)."""
    from support.tiny_models import tiny_pipeline

    model = tmp_path / "model"
    tiny_pipeline(model, "sd1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.toml").write_text('[[prompts]]\ntarget = "a circle"\nresolution = 64\n')
    line = (f"train_leco.py --pretrained_model_name_or_path={model.as_posix()} --prompts_file=p.toml --output_dir=out "
            "--output_name=circle --max_train_steps=1 --max_denoising_steps=2 --network_module=lycoris.kohya "
            "--network_args algo=loha --save_every_n_steps=1")
    assert main(["convert-args", "--out", "run.toml", line]) == 0
    with open(tmp_path / "run.toml", "a") as handle:
        handle.write("ema_decay = 0.5\n")  # a LOBA option beside the converted ones
    assert main(["train", "run.toml", "--quiet"]) == 0
    files = sorted(p.name for p in (tmp_path / "out").glob("*.safetensors"))
    assert files == ["circle-ema.safetensors", "circle.safetensors"]
    from loba.sliders.kohya import load_slider

    assert any(".hada_w1_a" in key for key in load_slider(tmp_path / "out" / "circle.safetensors").tensors)
