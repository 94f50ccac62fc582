"""The bad-input corpus over `loba train` run-file fields: each bad file exits with status 2 and a message naming
the field (no traceback), before any model is loaded, and writes nothing to the output folder."""

import pytest

from loba.cli.main import main

HEAD = 'pretrained_model_name_or_path = "/does/not/exist"\n'
ENTRY = '[[prompts]]\ntarget = "a red circle"\n'

# (top-level lines, lines inside the prompt entry, extra CLI arguments, what the message must name)
CASES = [
    ("network_dimm = 3", "", [], "network_dimm"),
    ("max_train_steps = 0", "", [], "max_train_steps"),
    ("max_train_steps = inf", "", [], "max_train_steps"),
    ("learning_rate = nan", "", [], "learning_rate"),
    ("leco_denoise_guidance_scale = nan", "", [], "leco_denoise_guidance_scale"),
    ("network_alpha = inf", "", [], "network_alpha"),
    ('lr_pattern = {".*" = nan}', "", [], "lr_pattern"),
    ('rank_pattern = {"(" = 4}', "", [], "rank_pattern"),
    ('exclude = ["[a"]', "", [], "exclude"),
    ("optimizer_args = {eps = nan}", "", [], "optimizer_args"),
    ('mixed_precision = "fp8"', "", [], "mixed_precision"),
    ("save_every_n_steps = -1", "", [], "save_every_n_steps"),
    ("min_timestep = 900\nmax_timestep = 100", "", [], "min_timestep"),
    ("version = 99", "", [], "version"),
    ("[network]\nfoo = 1", "", [], "network.foo"),
    ("", "resolution = 8000000", [], "resolution"),
    ("", "batch_size = 512", [], "batch_size"),
    ("", "guidance_scale = inf", [], "guidance_scale"),
    ("", "weight = 1e9", [], "weight"),
    ("", 'prompt_file = "missing.txt"', [], "prompt_file"),
    ("", 'neutral_prompt_file = "binary.txt"', [], "neutral_prompt_file"),
    ("", 'mask = "missing.png"', [], "mask"),
    ('prompts_file = "binary.toml"', None, [], "'file'"),
    ('prompts_file = "missing.toml"', None, [], "'file'"),
    ("", "", ["--preview-every", "1", "--preview-weights", "1,,2"], "--preview-weights"),
]


@pytest.mark.parametrize("top, entry, args, field", CASES, ids=[c[3] for c in CASES])
def test_a_bad_run_file_names_the_field_and_writes_nothing(tmp_path, capsys, top, entry, args, field):
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "binary.toml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    prompts = "" if entry is None else ENTRY + entry + "\n"
    # Top-level keys first: a TOML table header ([network]) takes every key after it.
    run = tmp_path / "run.toml"
    run.write_text(HEAD + (top + "\n" if not top.startswith("[") else "") + prompts + (top + "\n" if top.startswith("[") else ""))
    out = tmp_path / "out"
    assert main(["train", str(run), "--out", str(out), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert field in err and "Traceback" not in err, err
    assert "pretrained_model_name_or_path" not in err, "failed on the model, not on the bad field"
    assert not out.exists() or not any(out.rglob("*"))
