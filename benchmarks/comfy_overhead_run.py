"""Subprocess of benchmarks.comfy_overhead: argv = COMFYUI_DIR OUT.json SHORT LONG ROUNDS."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SETTINGS = dict(learning_rate=1e-3, network_dim=4, network_alpha=1.0, seed=0, resolution=0, max_denoising_steps=25,
                leco_denoise_guidance_scale=3.0, denoise_with_adapter=False, mixed_precision="no", gradient_checkpointing=False,
                save_precision="float", save_every_n_steps=0, preview_every=0, preview_weights="0")


def main() -> None:
    comfy_dir, out, short, long_, rounds = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    sys.path.insert(0, comfy_dir)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import folder_paths

    tmp = tempfile.mkdtemp()
    folder_paths.folder_names_and_paths["loras"] = ([tmp], folder_paths.supported_pt_extensions)
    folder_paths.set_output_directory(tmp)
    spec = importlib.util.spec_from_file_location("loba_bench_pack", REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = pack
    spec.loader.exec_module(pack)
    nodes = {cls.GET_SCHEMA().node_id: cls for cls in asyncio.run(asyncio.run(pack.comfy_entrypoint()).get_node_list())}
    engine = importlib.import_module("loba_bench_pack.loba.train.run")
    config_module = importlib.import_module("loba_bench_pack.loba.config")
    backend_module = importlib.import_module("loba_bench_pack.nodes.comfy_backend")
    with torch.inference_mode():
        model, clip, _ = nodes["LOBA_ToyWorldLoader"].PREPARE_CLASS_CLONE({}).EXECUTE_NORMALIZED().args
        prompts = nodes["LOBA_PromptPair"].PREPARE_CLASS_CLONE({}).EXECUTE_NORMALIZED(
            target="a red circle", action="erase", positive="", unconditional="a circle", neutral="", guidance_scale=1.0,
            resolution=0, batch_size=2, weight=1.0, multiplier=1.0).args[0]
    train_node = nodes["LOBA_TrainSlider"].PREPARE_CLASS_CLONE({"UNIQUE_ID": "1"})

    def node_run(steps: int) -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            train_node.EXECUTE_NORMALIZED(model=model, clip=clip, prompts=prompts, max_train_steps=steps,
                                          filename_prefix="bench/s", **SETTINGS)
        return time.perf_counter() - started

    def engine_run(steps: int) -> float:
        values = {k: v for k, v in SETTINGS.items() if k not in ("resolution", "preview_every", "preview_weights")}
        config = config_module.TrainConfig().replace(max_train_steps=steps, **values)
        started = time.perf_counter()
        with torch.inference_mode():
            backend = backend_module.ComfyBackend(model, clip)
            engine.run_training(engine.RunRequest(prompts, config, backend=backend))
        return time.perf_counter() - started

    runs = {"node": [], "engine": []}
    for index in range(rounds):
        for name, fn in (("node", node_run), ("engine", engine_run)) if index % 2 == 0 else (("engine", engine_run), ("node", node_run)):
            a, b = fn(short), fn(long_)
            runs[name].append((b - a) / (long_ - short))
    out.write_text(json.dumps({"node_s_per_step": statistics.fmean(runs["node"]),
                               "engine_s_per_step": statistics.fmean(runs["engine"]), "runs": runs}))


if __name__ == "__main__":
    main()
