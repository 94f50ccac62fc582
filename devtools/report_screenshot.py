"""Screenshot a report.html in headless Chromium (the README's example report image):

    python -m devtools.report_screenshot OUT/report.html docs/example-eval-report.png [--jpg docs/example-eval-report.jpg]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def screenshot(report: Path, png: Path, jpg: Path | None, width: int = 1100, chromium: str = "/usr/bin/chromium") -> None:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": width, "height": 800})
        page.goto(report.resolve().as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(png), full_page=True)
        browser.close()
    if jpg is not None:
        image = Image.open(png).convert("RGB")
        image.thumbnail((900, 10_000))
        image.save(jpg, quality=80, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--jpg", type=Path)
    args = parser.parse_args(argv)
    if not args.report.is_file():
        parser.error(f"{args.report} does not exist")
    screenshot(args.report, args.png, args.jpg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
