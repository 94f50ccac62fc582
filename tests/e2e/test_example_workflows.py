"""Every example workflow runs end to end through a real ComfyUI server (the UI file converted to the prompt the
frontend queues), the template browser's routes list and serve them, and /loba/runs serves a finished run.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from support.comfy import COMFY_MARKS, require_comfyui

from devtools.comfy_server import fetch_bytes, get_json, of_type, start_server, stop_server
from devtools.example_workflows.builder import WORKFLOWS, load_workflow, prepare_inputs, run_example
from devtools.example_workflows.convert import VIRTUAL_NODES
from devtools.example_workflows.specs import EXAMPLES

require_comfyui()
pytestmark = COMFY_MARKS + [pytest.mark.slow]
BY_NAME = {example.name: example for example in EXAMPLES}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("comfy-examples"))
    running.object_info = get_json(running, "/object_info")
    running.ran = {}
    yield running
    stop_server(running)


def ran(server, name: str) -> dict:
    """Run an example once per server (examples that read another's files run it first)."""
    if name not in server.ran:
        example = BY_NAME[name]
        for needed in example.needs:
            assert ran(server, needed)["ended"]["type"] == "execution_success", f"{name} needs {needed}"
        prepare_inputs(example, server)
        server.ran[name] = asyncio.run(run_example(server, name, server.object_info))
    return server.ran[name]


def test_every_example_has_a_thumbnail_and_only_known_nodes(server):
    files = sorted(path.stem for path in WORKFLOWS.glob("*.json"))
    assert files == sorted(BY_NAME), "example_workflows/ and devtools/example_workflows/specs.py list the same examples"
    for name in files:
        assert (WORKFLOWS / f"{name}.jpg").stat().st_size > 2000, f"{name}.jpg thumbnail"
        types = {node["type"] for node in load_workflow(name)["nodes"]}
        unknown = types - set(server.object_info) - VIRTUAL_NODES
        assert not unknown, f"{name} uses nodes that are neither core nor LOBA: {unknown}"
        assert all(t.startswith("LOBA_") or not server.object_info[t]["python_module"].startswith("custom_nodes")
                   for t in types - VIRTUAL_NODES)


def test_template_routes_list_and_serve_the_examples(server):
    templates = get_json(server, "/workflow_templates")
    assert sorted(templates["loba"]) == sorted(BY_NAME)
    served = json.loads(fetch_bytes(server, "/api/workflow_templates/loba/loba_erase_concept.json"))
    assert served == load_workflow("loba_erase_concept")
    assert fetch_bytes(server, "/api/workflow_templates/loba/loba_erase_concept.jpg")[:2] == b"\xff\xd8"


@pytest.mark.parametrize("name", [example.name for example in EXAMPLES])
def test_example_runs_end_to_end(server, name):
    seen = ran(server, name)
    assert seen["ended"]["type"] == "execution_success", seen["ended"]
    outputs = {d["node"]: d["output"] for d in of_type(seen, "executed")}
    assert outputs[str(BY_NAME[name].thumbnail_node)]["images"], "the preview grid reaches the browser"
    if name == "loba_resume_from_checkpoint":
        steps = [d["step"] for d in of_type(seen, "loba.loss")]
        assert steps == list(range(21, 151)), "resumed after the step-20 checkpoint"
    if name == "loba_merge_and_bake":
        assert list((server.base / "output" / "checkpoints").glob("loba-toy-no-red-large_*.safetensors"))


def test_runs_route_serves_the_latest_state_of_a_train_node(server):
    ran(server, "loba_erase_concept")
    # RUNS is keyed by node id and every example's first Train node is "10": the latest such run is what is served.
    last = [seen for seen in server.ran.values() if any(d["node"] == "10" for d in of_type(seen, "loba.loss"))][-1]
    losses = [d["loss"] for d in of_type(last, "loba.loss") if d["node"] == "10"]
    state = get_json(server, "/loba/runs/10")
    assert state["losses"] == pytest.approx(losses) and state["running"] is False and state["step"] == state["total"]
    assert "10" in get_json(server, "/loba/runs") and "losses" not in get_json(server, "/loba/runs")["10"]
    with pytest.raises(Exception, match="404"):
        get_json(server, "/loba/runs/no-such-node")



def test_every_node_has_a_help_page_the_frontend_can_fetch(server):
    """The frontend fetches /extensions/<pack>/docs/<node id>.md for custom nodes' help; each page names every input."""
    lobas = {name: info for name, info in server.object_info.items() if name.startswith("LOBA_")}
    missing = {}
    for name, info in lobas.items():
        page = fetch_bytes(server, f"/extensions/loba/docs/{name}.md").decode()
        inputs = [*info["input"].get("required", {}), *info["input"].get("optional", {})]
        assert page.startswith(f"# {info['display_name']}") and "## Example" in page, name
        if absent := [i for i in inputs if f"`{i}`" not in page]:
            missing[name] = absent
    assert not missing, f"help pages miss inputs: {missing}"
    for script in ("loba_loss_chart.js", "loba_weights_widget.js"):
        assert b"registerExtension" in fetch_bytes(server, f"/extensions/loba/{script}")
