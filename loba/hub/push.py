"""`loba push DIR --repo USER/NAME` and a run file's push_to_hub: check everything offline first (the repo id by
huggingface_hub's own validator, a token from the usual places, the run folder), stage the files in a temporary
folder, then create_repo + upload_folder. The token is passed to huggingface_hub and never printed or written."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import ConfigError, LobaError
from .bundle import RunBundle, read_bundle
from .card import LOSS_IMAGE, PREVIEW_IMAGE, render_card


@dataclass(frozen=True)
class PushResult:
    url: str
    files: tuple[str, ...]  # the paths in the repo


def check_repo_id(repo_id: object, field: str = "--repo") -> str:
    """USER/NAME as the Hub accepts it (huggingface_hub's validator), with the namespace the Hub needs here."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise ConfigError(field, f"{repo_id!r} is not USER/NAME (e.g. alice/smile-slider): name the account and the repo")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ConfigError(field, f"{repo_id!r} is not a valid Hub repo id: {exc}") from exc
    return repo_id


def hub_token(token: Optional[str] = None) -> str:
    """An explicit token, else HF_TOKEN, else the one `hf auth login` saved (huggingface_hub.get_token reads both)."""
    from huggingface_hub import get_token

    found = token or get_token()
    if not found:
        raise ConfigError("token", "no Hugging Face token: set HF_TOKEN or run `hf auth login` (a token with write access)")
    return found


def upload_plan(bundle: RunBundle, repo_id: str, base_model: Optional[str]) -> dict[str, bytes | Path]:
    """path in the repo -> its content (bytes) or the local file it is copied from. Nothing is read remotely."""
    from ..images import loss_curve_image

    run_name = bundle.run_file.name if bundle.run_file else None
    plan: dict[str, bytes | Path] = {"README.md": render_card(bundle, repo_id, base_model, run_name).encode("utf-8"),
                                     bundle.slider.name: bundle.slider}
    if bundle.run_file is not None:
        plan[run_name] = bundle.run_file
    if bundle.losses:
        import io

        buffer = io.BytesIO()
        loss_curve_image(bundle.losses).save(buffer, format="PNG")
        plan[LOSS_IMAGE] = buffer.getvalue()
        plan["loss.csv"] = bundle.loss_csv
    if bundle.preview is not None:
        plan[PREVIEW_IMAGE] = bundle.preview
    for path in bundle.eval_files:
        plan[f"eval/{path.name}"] = path
    return plan


def base_model_of(bundle: RunBundle, base_model: Optional[str]) -> Optional[str]:
    """The card's base_model: the given one, else the run file's model when it is a Hub id (a local path or an
    embedded model is not something the Hub can link)."""
    name = base_model or _run_file_model(bundle.run_file)
    if not name or Path(name).exists() or name.count("/") != 1:
        return None
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


def _run_file_model(run_file: Optional[Path]) -> Optional[str]:
    if run_file is None:
        return None
    from ..prompts.loader import read_prompt_table

    value = read_prompt_table(run_file).get("pretrained_model_name_or_path")
    return value if isinstance(value, str) else None


def push_run(folder: Path, repo_id: str, *, private: bool = False, token: Optional[str] = None, slider: Optional[Path] = None,
             run_file: Optional[Path] = None, base_model: Optional[str] = None, endpoint: Optional[str] = None) -> PushResult:
    """Upload a run folder as a model repo; every check runs before the first request, so bad input uploads nothing."""
    repo_id = check_repo_id(repo_id)
    bundle = read_bundle(Path(folder), slider, run_file)
    secret = hub_token(token)
    plan = upload_plan(bundle, repo_id, base_model_of(bundle, base_model))
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=endpoint, token=secret)
    with tempfile.TemporaryDirectory(prefix="loba-push-") as staging:
        _stage(plan, Path(staging))
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            api.upload_folder(repo_id=repo_id, folder_path=staging, repo_type="model",
                              commit_message=f"LOBA slider {bundle.slider.name}")
        except HfHubHTTPError as exc:  # its message names the URL and the Hub's reason, never the token
            raise LobaError(f"push to {repo_id}: the Hub refused it: {' '.join(str(exc).split())}") from exc
    return PushResult(str(url), tuple(sorted(plan)))


def _stage(plan: dict[str, bytes | Path], folder: Path) -> None:
    for name, content in plan.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            shutil.copyfile(content, target)
