"""What the nodes may read inside ComfyUI: the input folder, the default user's folder (not with --multi-user,
where a node cannot know who queued it), and checkpoints only under output/loba_checkpoints."""

import importlib

import pytest
from support.comfy import COMFY_MARKS, require_comfyui
from support.pack import PACK_NAME, run_node

require_comfyui()
pytestmark = COMFY_MARKS
TOML = '[[prompts]]\ntarget = "a red circle"\n'


@pytest.fixture
def user_folder(pack, tmp_path):
    import folder_paths

    saved = folder_paths.get_user_directory()
    folder_paths.set_user_directory(str(tmp_path / "user"))
    (tmp_path / "user" / "default").mkdir(parents=True)
    (tmp_path / "user" / "other").mkdir()
    yield tmp_path / "user"
    folder_paths.set_user_directory(saved)


def test_the_default_user_folder_is_readable_other_users_are_not(pack, user_folder, monkeypatch):
    from comfy.cli_args import args

    node = pack.nodes["LOBA_LoadPromptToml"]
    (user_folder / "default" / "mine.toml").write_text(TOML)
    (user_folder / "other" / "theirs.toml").write_text(TOML)
    loaded = run_node(node, toml="", file=str(user_folder / "default" / "mine.toml")).args[0]
    assert loaded.pairs()[0].target == "a red circle"
    with pytest.raises(ValueError, match="input 'file'.*is outside ComfyUI's input folder"):
        run_node(node, toml="", file=str(user_folder / "other" / "theirs.toml"))
    monkeypatch.setattr(args, "multi_user", True)
    with pytest.raises(ValueError, match="input 'file'.*is outside ComfyUI's input folder \\("):
        run_node(node, toml="", file=str(user_folder / "default" / "mine.toml"))


def test_resume_only_from_the_checkpoint_folder(pack):
    host_files = importlib.import_module(f"{PACK_NAME}.nodes.host_files")
    checkpoint_root, resume_checkpoint = host_files.checkpoint_root, host_files.resume_checkpoint
    run = checkpoint_root() / "run-a" / "checkpoints"
    run.mkdir(parents=True, exist_ok=True)
    (run / "step-000002.pt").write_bytes(b"x")
    assert resume_checkpoint("loba_checkpoints/run-a/checkpoints/step-000002.pt", "N") == (run / "step-000002.pt").resolve()
    (checkpoint_root().parent / "elsewhere.pt").write_bytes(b"x")
    for text in ("elsewhere.pt", "loba_checkpoints/../elsewhere.pt", str(checkpoint_root().parent / "elsewhere.pt")):
        with pytest.raises(ValueError, match="N, input 'resume_file'.*is outside LOBA's checkpoint folder"):
            resume_checkpoint(text, "N")
    assert resume_checkpoint("  ", "N") is None
