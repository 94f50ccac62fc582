"""Writes example_workflows/<name>.json (UI format) from devtools/example_workflows/specs.py, runs each on a real server and
saves its preview grid as the same-name .jpg thumbnail.

    OMP_NUM_THREADS=1 python -m devtools.example_workflows.builder      # from the repository root, with ComfyUI found

The widget layout follows the frontend's rules (devtools/example_workflows/convert.py); the browser tests check the result
loads in the real frontend and converts to the same prompt there.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import tempfile
import urllib.parse
import uuid
from pathlib import Path

from ..comfyui import REPO_ROOT
from .specs import EXAMPLES, Example, Node, Ref
from .convert import extra_widget_values, is_widget, ordered_inputs, ui_to_api

WORKFLOWS = REPO_ROOT / "example_workflows"
NODE_WIDTH = 340
EXTRA_HEIGHT = {"LOBA_TrainSlider": 230, "LoadImage": 300, "PreviewImage": 240}  # chart, image previews


def widget_default(spec: list):
    if isinstance(spec[0], list):
        return spec[0][0] if spec[0] else ""
    options = spec[1] if len(spec) > 1 else {}
    if "default" in options:
        return options["default"]
    if spec[0] == "COMBO":
        return (options.get("options") or [""])[0]
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[spec[0]]


def widget_values(node: Node, info: dict) -> list:
    values = []
    for name, spec in ordered_inputs(info):
        if not is_widget(spec):
            continue
        values.append(node.values.get(name, widget_default(spec)))
        options = spec[1] if len(spec) > 1 else {}
        if extra_widget_values(name, spec):
            values.append("image" if options.get("image_upload") else "fixed")  # upload button / seed kept fixed
    return values


def node_size(info: dict, n_widgets: int, node_type: str) -> list[int]:
    sockets = max(sum(not is_widget(spec) for _, spec in ordered_inputs(info)), len(info["output"]))
    return [NODE_WIDTH, 46 + 22 * sockets + 26 * n_widgets + EXTRA_HEIGHT.get(node_type, 0)]


def build_workflow(example: Example, object_info: dict) -> dict:
    links, nodes = [], []
    outputs: dict[tuple[int, int], list[int]] = {}
    for node in example.nodes:
        for name, value in node.values.items():
            if isinstance(value, Ref):
                link_id = len(links) + 1
                links.append([link_id, value.node, value.slot, node.id, name, None])
                outputs.setdefault((value.node, value.slot), []).append(link_id)
    by_id = {node.id: node for node in example.nodes}
    for order, node in enumerate(example.nodes):
        info = object_info[node.type]
        inputs = []
        for name, spec in ordered_inputs(info):
            if is_widget(spec):
                continue
            link = next((link[0] for link in links if link[3] == node.id and link[4] == name), None)
            optional = {"shape": 7} if name in info["input"].get("optional", {}) else {}  # the frontend's hollow dot
            inputs.append({"name": name, "type": spec[0], "link": link, **optional})
        for link in links:
            if link[3] == node.id and isinstance(link[4], str):
                link[4] = [i for i, inp in enumerate(inputs) if inp["name"] == link[4]][0]
        values = widget_values(node, info)
        nodes.append({
            "id": node.id, "type": node.type, "pos": list(node.pos), "size": node_size(info, len(values), node.type),
            "flags": {}, "order": order, "mode": 0, "inputs": inputs,
            "outputs": [{"name": name, "type": kind, "links": outputs.get((node.id, slot), [])}
                        for slot, (name, kind) in enumerate(zip(info["output_name"], info["output"]))],
            "properties": {"Node name for S&R": node.type}, "widgets_values": values,
            **({"title": node.title} if node.title else {})})
    for link in links:
        link[5] = object_info[by_id[link[1]].type]["output"][link[2]]
    note_id = max(node.id for node in example.nodes) + 1
    nodes.append({"id": note_id, "type": "MarkdownNote", "pos": [0, -260], "size": [700, 220], "flags": {},
                  "order": len(nodes), "mode": 0, "inputs": [], "outputs": [], "properties": {},
                  "widgets_values": [example.note], "color": "#432", "bgcolor": "#653"})
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, "loba/" + example.name)), "revision": 0,
            "last_node_id": note_id, "last_link_id": len(links), "nodes": nodes, "links": links, "groups": [],
            "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [60, 320]}}, "version": 0.4}


def load_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / f"{name}.json").read_text())


def prepare_inputs(example: Example, server) -> None:
    """Copy the files the example's Load Image nodes name into the server's input folder."""
    for file in example.inputs:
        (server.base / "input").mkdir(exist_ok=True)
        shutil.copy(WORKFLOWS / "input" / file, server.base / "input" / file)


async def run_example(server, name: str, object_info: dict) -> dict:
    from ..comfy_server import run_graph

    workflow = load_workflow(name)
    return await run_graph(server, ui_to_api(workflow, object_info), extra_data={"extra_pnginfo": {"workflow": workflow}})


def output_image(server, seen: dict, node_id: int):
    from PIL import Image

    from ..comfy_server import fetch_bytes, of_type

    outputs = {d["node"]: d["output"] for d in of_type(seen, "executed")}
    image = outputs[str(node_id)]["images"][0]
    query = urllib.parse.urlencode({"filename": image["filename"], "subfolder": image["subfolder"], "type": image["type"]})
    return Image.open(io.BytesIO(fetch_bytes(server, "/view?" + query))).convert("RGB")


def write_thumbnail(image, path: Path, width: int = 512) -> None:
    scale = width / image.width
    if scale < 1:
        image = image.resize((width, round(image.height * scale)))
    image.save(path, "JPEG", quality=88)


def main(only: tuple[str, ...] = ()) -> None:
    """Writes every example's .json; runs those named in `only` (default: all, in order) for their thumbnails."""
    from ..comfy_server import get_json, start_server, stop_server

    server = start_server(Path(tempfile.mkdtemp(prefix="loba-examples-")))
    try:
        object_info = get_json(server, "/object_info")
        for example in EXAMPLES:
            (WORKFLOWS / f"{example.name}.json").write_text(json.dumps(build_workflow(example, object_info), indent=1) + "\n")
        for example in [e for e in EXAMPLES if not only or e.name in only]:
            prepare_inputs(example, server)
            seen = asyncio.run(run_example(server, example.name, object_info))
            assert seen["ended"]["type"] == "execution_success", (example.name, seen["ended"])
            write_thumbnail(output_image(server, seen, example.thumbnail_node), WORKFLOWS / f"{example.name}.jpg")
            print("wrote", example.name)
    finally:
        stop_server(server)


if __name__ == "__main__":
    import sys

    main(tuple(sys.argv[1:]))
