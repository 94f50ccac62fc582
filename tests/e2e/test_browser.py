"""The pack in the real ComfyUI frontend (comfyui-frontend-package), driven by headless Chromium: the nodes in the
node library with their tooltips, every example workflow opened from the template browser with no missing node
and no console error (and converted to the same prompt the tests run), the weights field checked as you type,
the erase example queued from the UI (progress, live loss chart, preview grid), and the chart catching up after a
page reload mid-run. Screenshots go to test-artifacts/browser/.
"""

from __future__ import annotations

import re
import time

import pytest
from support.browser import APP_READY, ARTIFACTS, CHROMIUM_ARGS, browser_skip_reason, chromium_path, is_baseline_error
from support.comfy import COMFY_MARKS, REPO_ROOT, require_comfyui

from devtools.comfy_server import get_json, post_json, start_server, stop_server
from devtools.example_workflows.builder import load_workflow, prepare_inputs
from devtools.example_workflows.convert import ui_to_api
from devtools.example_workflows.specs import EXAMPLES

require_comfyui()
if browser_skip_reason():
    pytest.skip(browser_skip_reason(), allow_module_level=True)
pytestmark = COMFY_MARKS + [pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("comfy-browser"))
    running.object_info = get_json(running, "/object_info")
    for example in EXAMPLES:
        prepare_inputs(example, running)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=chromium_path(), args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        page.loba_errors, page.loba_failed = [], []
        page.on("console", lambda m: m.type == "error" and page.loba_errors.append(m.text))
        page.on("pageerror", lambda e: page.loba_errors.append(f"pageerror: {e.message} at {e.stack}"))
        page.on("response", lambda r: r.status >= 400 and page.loba_failed.append(f"{r.status} {r.url}"))
        open_app(page, server)
        # The stock frontend throws one error of its own on an offline first visit; none may come from the pack.
        assert not [e for e in page.loba_errors if "extensions/loba" in e], page.loba_errors
        page.loba_start = len(page.loba_errors)
        yield page
        context.close()


def open_app(page, server) -> None:
    page.goto(server.url)
    page.wait_for_function(APP_READY, timeout=90_000)
    page.wait_for_timeout(1500)  # the first-visit template dialog opens after the app is ready
    page.keyboard.press("Escape")
    page.wait_for_timeout(300)


def pack_errors(page, since: int = 0) -> list[str]:
    """Console errors after the app started (and after `since`) and failed pack requests, less what the stock
    frontend logs offline anyway."""
    errors = [e for e in page.loba_errors[max(since, page.loba_start):] if not is_baseline_error(e)]
    return errors + [f for f in page.loba_failed if "loba" in f.lower()]


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_loba_nodes_in_the_node_library_with_tooltips(page, server):
    page.click(".node-library-tab-button")
    search = page.locator(".node-lib-search-box input, input[placeholder*='Search']").first
    search.fill("LOBA")
    page.wait_for_timeout(800)
    shot(page, "node-library")
    library = page.inner_text(".side-bar-panel")
    lobas = {name: info for name, info in server.object_info.items() if name.startswith("LOBA_")}
    declared = {m for f in (REPO_ROOT / "nodes").glob("*.py") for m in re.findall(r'node_id="(\w+)"', f.read_text())}
    assert set(lobas) == declared  # every node the pack declares, and nothing else
    missing = [info["display_name"] for info in lobas.values() if info["display_name"] not in library]
    assert not missing, f"not in the node library's LOBA search: {missing}"
    page.get_by_text("LOBA Train Slider", exact=True).first.hover()
    page.wait_for_timeout(800)
    shot(page, "node-library-train-preview")
    assert "Trains a LoRA slider" in page.inner_text("body"), "hovering shows the node's description"
    # The definitions the frontend built its widgets from carry every input's tooltip.
    untipped = page.evaluate("""() => Object.entries(LiteGraph.registered_node_types)
        .filter(([name]) => name.startsWith('LOBA_'))
        .flatMap(([name, type]) => Object.entries({...type.nodeData.input.required, ...(type.nodeData.input.optional ?? {})})
            .filter(([, spec]) => !spec[1]?.tooltip).map(([input]) => `${name}.${input}`))""")
    assert not untipped
    page.click(".node-library-tab-button")
    assert not pack_errors(page)


def load_from_template_browser(page, name: str) -> None:
    page.click(".templates-tab-button")
    page.get_by_text("loba", exact=True).first.click()
    page.locator(f"[data-testid='template-workflow-{name}']").click()
    page.wait_for_function("n => app.graph.nodes.length === n", arg=len(load_workflow(name)["nodes"]), timeout=60_000)
    page.wait_for_timeout(800)


@pytest.mark.parametrize("name", [example.name for example in EXAMPLES])
def test_example_loads_from_the_template_browser(page, server, name):
    open_app(page, server)  # a fresh page per example: an earlier template's tab or dialog never changes this one
    since = len(page.loba_errors)
    load_from_template_browser(page, name)
    shot(page, f"template-{name}")
    types = page.evaluate("() => app.graph.nodes.map(n => [n.type, !!LiteGraph.registered_node_types[n.type], n.has_errors ?? false])")
    assert all(registered for _, registered, _ in types), f"missing nodes: {types}"
    assert not page.locator("text=/missing/i").filter(has_text="node").count(), "a missing-nodes dialog opened"
    assert not pack_errors(page, since)
    prompt = page.evaluate("async () => (await app.graphToPrompt()).output")
    queued = {node: {"class_type": entry["class_type"], "inputs": entry["inputs"]} for node, entry in prompt.items()}  # less _meta
    assert queued == ui_to_api(load_workflow(name), server.object_info), "the frontend queues what the example tests run"


def test_weights_field_is_checked_as_you_type(page, server):
    load_from_template_browser(page, "loba_preview_saved_slider")
    field = page.locator("input.loba-weights").first
    field.fill("-1, 0, x")
    assert field.get_attribute("data-valid") == "false" and "'x' is not a number" in field.get_attribute("title")
    shot(page, "weights-invalid")
    field.fill("-2, -1, 0, 1, 2")
    assert field.get_attribute("data-valid") == "true"
    prompt = page.evaluate("async () => (await app.graphToPrompt()).output")
    assert prompt["11"]["inputs"]["weights"] == "-2, -1, 0, 1, 2"


def chart_steps(page) -> int:
    return int(page.evaluate("() => app.graph.getNodeById(10)?.lobaChart?.element.dataset.steps ?? '0'"))


def test_queue_the_erase_example_progress_live_chart_and_grid(page, server):
    load_from_template_browser(page, "loba_erase_concept")
    page.evaluate("() => { const w = app.graph.getNodeById(10).widgets.find(w => w.name === 'max_train_steps'); w.value = 30; }")
    since = len(page.loba_errors)
    page.get_by_role("button", name="Run").first.click()
    seen_steps, titles, deadline = set(), set(), time.time() + 600  # a hang guard: shared CI cores are slow
    while time.time() < deadline:
        seen_steps.add(chart_steps(page))
        titles.add(page.title())
        if page.evaluate("() => (app.graph.getNodeById(12)?.imgs?.length ?? 0) > 0"):
            break
        if len(seen_steps) == 3:
            shot(page, "erase-training-live-chart")
        page.wait_for_timeout(250)
    shot(page, "erase-done-preview-grid")
    assert page.evaluate("() => (app.graph.getNodeById(12)?.imgs?.length ?? 0) > 0"), "the preview grid is shown"
    live = sorted(s for s in seen_steps if 0 < s < 30)
    assert len(live) >= 3, f"the chart fills step by step while training: saw {sorted(seen_steps)}"
    assert chart_steps(page) == 30 and page.evaluate("() => app.graph.getNodeById(10).lobaChart.element.dataset.state") == "done"
    assert any("%" in title for title in titles), f"progress shown in the title: {titles}"
    assert not pack_errors(page, since)


def test_the_chart_catches_up_after_a_reload_mid_run(page, server):
    load_from_template_browser(page, "loba_enhance_concept")
    page.evaluate("() => { const w = app.graph.getNodeById(10).widgets.find(w => w.name === 'max_train_steps'); w.value = 400; }")
    page.get_by_role("button", name="Run").first.click()
    page.wait_for_function("() => Number(app.graph.getNodeById(10)?.lobaChart?.element.dataset.steps ?? 0) >= 5", timeout=120_000)
    try:
        page.reload()
        page.wait_for_function(APP_READY, timeout=90_000)
        page.wait_for_function("() => Number(app.graph.getNodeById(10)?.lobaChart?.element.dataset.steps ?? 0) >= 5",
                               timeout=30_000)
        shot(page, "reloaded-mid-run")
        state = get_json(server, "/loba/runs/10")
        assert state["running"], "still training when the reloaded page caught up"
    finally:
        post_json(server, "/interrupt")
    page.wait_for_function("() => app.graph.getNodeById(10)?.lobaChart?.element.dataset.state !== 'training'", timeout=60_000)
