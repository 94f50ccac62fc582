"""UI-format workflows (what the ComfyUI frontend saves and loads) <-> API-format prompts (what /prompt runs).

The frontend lays a node's widget values out in the order of its inputs in /object_info (required, then
optional), one value per widget input, plus one extra value after an INT or COMBO with a "control after
generate" widget (control_after_generate, or an INT named seed / noise_seed, the frontend's legacy rule) and
after an image-upload COMBO (its upload button). These rules are the frontend's (comfyui-frontend-package
1.27); the browser tests check this module against the frontend's own conversion.
"""

from __future__ import annotations

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
VIRTUAL_NODES = {"Note", "MarkdownNote"}  # frontend-only nodes: never sent to the server
BYPASSED_MODES = {2, 4}  # muted, bypassed


def ordered_inputs(node_info: dict) -> list[tuple[str, list]]:
    inputs = node_info["input"]
    return [*inputs.get("required", {}).items(), *inputs.get("optional", {}).items()]


def is_widget(spec: list) -> bool:
    return isinstance(spec[0], list) or spec[0] in WIDGET_TYPES


def extra_widget_values(name: str, spec: list) -> int:
    """How many serialized values follow this widget's own (its control or upload widget)."""
    options = spec[1] if len(spec) > 1 else {}
    kind = "COMBO" if isinstance(spec[0], list) else spec[0]
    control = options.get("control_after_generate") or (kind == "INT" and name in ("seed", "noise_seed"))
    return int(bool(control and kind in ("INT", "COMBO"))) + int(bool(options.get("image_upload")))


def widget_value_names(node_info: dict) -> list[str | None]:
    """The input name of each widgets_values slot (None for a control/upload slot)."""
    names: list[str | None] = []
    for name, spec in ordered_inputs(node_info):
        if is_widget(spec):
            names += [name] + [None] * extra_widget_values(name, spec)
    return names


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """The API prompt the frontend would queue for this UI workflow."""
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in VIRTUAL_NODES or node.get("mode", 0) in BYPASSED_MODES:
            continue
        info = object_info[node["type"]]  # KeyError = a missing node type
        linked = {inp["name"]: links[inp["link"]] for inp in node.get("inputs", []) if inp.get("link") is not None}
        values = dict(zip(widget_value_names(info), node.get("widgets_values", [])))
        values.pop(None, None)
        inputs = {}
        for name, spec in ordered_inputs(info):
            if name in linked:
                inputs[name] = [str(linked[name][1]), linked[name][2]]
            elif is_widget(spec) and name in values:
                inputs[name] = values[name]
            elif is_widget(spec) and len(spec) > 1 and "default" in spec[1]:
                # A widget newer than the saved workflow keeps its default in the frontend, which queues it too.
                inputs[name] = spec[1]["default"]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt
