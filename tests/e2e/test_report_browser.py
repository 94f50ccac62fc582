"""report.html from a real `loba eval --model toyworld` run, opened with file:// in headless Chromium: the settings,
the table, one plot per metric and the grid are visible, no image is broken, the table's numbers are metrics.json's,
and nothing is fetched from outside the page. The screenshot goes to test-artifacts/browser/eval-report.png.
"""

from __future__ import annotations

import json

import pytest
from support.browser import ARTIFACTS, CHROMIUM_ARGS, browser_skip_reason, chromium_path
from support.sliders import random_toy_slider

from loba.eval.report_table import summary_rows

if browser_skip_reason():
    pytest.skip(browser_skip_reason(), allow_module_level=True)
pytestmark = [pytest.mark.slow]

SPEC = """target_prompts = ["a large red circle on a dark background"]
control_prompts = ["a small blue square"]
canary_prompts = ["a green triangle"]
weights = [-1, 0, 1]
seeds = [0, 1]
steps = 2
cfg = 5.0
grid_seeds = 1
[evaluators.pixel]
[evaluators.reader]
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from loba.cli.main import main

    folder = tmp_path_factory.mktemp("eval-report")
    (folder / "spec.toml").write_text(SPEC)
    slider = random_toy_slider(folder / "slider.safetensors")
    assert main(["eval", "--model", "toyworld", "--slider", str(slider), "--spec", str(folder / "spec.toml"),
                 "--out", str(folder / "out")]) == 0
    return folder / "out"


@pytest.fixture(scope="module")
def page(report, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=chromium_path(), args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.loba_requests, page.loba_errors = [], []
        page.on("request", lambda r: page.loba_requests.append(r.url))
        page.on("console", lambda m: m.type == "error" and page.loba_errors.append(m.text))
        page.goto((report / "report.html").as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(ARTIFACTS / "eval-report.png"), full_page=True)
        yield page
        context.close()


def visible_box(page, selector: str) -> dict:
    locator = page.locator(selector).first
    assert locator.is_visible(), f"{selector} is not visible"
    box = locator.bounding_box()
    assert box and box["width"] > 50 and box["height"] > 50, f"{selector} is rendered {box}"
    return box


def test_the_grid_and_plots_render(page, report):
    metrics = json.loads((report / "metrics.json").read_text())
    visible_box(page, "table")
    visible_box(page, "img[alt=grid]")  # a broken image collapses to a small icon
    natural = page.evaluate("() => { const i = document.querySelector('img[alt=grid]'); return [i.complete, i.naturalWidth]; }")
    assert natural[0] and natural[1] > 0, f"the grid image is broken: {natural}"
    broken = page.evaluate("() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length")
    assert broken == 0
    metric_count = sum(len(by_metric) for by_metric in next(iter(metrics["summary"].values())).values())
    assert page.locator("svg").count() == metric_count == 5  # pixel_drift and the reader's four metrics
    for index in range(metric_count):
        box = page.locator("svg").nth(index).bounding_box()
        assert box and box["width"] > 200 and box["height"] > 100
        assert page.locator("svg").nth(index).locator("polyline").count() >= 1, "a plot without a line"
    assert not [u for u in page.loba_requests if not u.startswith(("file:", "data:"))], page.loba_requests
    assert not page.loba_errors


def test_the_table_shows_the_numbers_of_metrics_json(page, report):
    metrics = json.loads((report / "metrics.json").read_text())
    rows = page.evaluate("""() => [...[...document.querySelectorAll('table')].at(-1).rows].slice(1)
        .map(r => [...r.cells].map(c => c.innerText.trim()))""")
    expected = [[role, name, metric, *cells] for role, name, metric, cells in summary_rows(metrics)]
    assert rows == expected and len(rows) == 3 * 5
    drift = metrics["summary"]["target"]["pixel"]["pixel_drift"]
    assert drift["0"]["mean"] == 0 and drift["1"]["mean"] > 0, "the run moved the images: the numbers are not all 0"
    shown = next(r for r in rows if r[:3] == ["target", "pixel", "pixel_drift"])
    assert shown[3 + metrics["weights"].index("1")].startswith(f"{drift['1']['mean']:.4f} [")
    body = page.inner_text("body")
    assert all(prompt in body for prompt in metrics["per_prompt"])
    assert (ARTIFACTS / "eval-report.png").stat().st_size > 10_000
