"""Screenshots of an experiment report: the page at laptop size and every section on its own.

    .venv/bin/python scripts/report_screenshots.py RUN_DIR/report.html docs/report

Uses Debian's Chromium through Playwright (no browser download), offline. Writes
``page.png`` (the first screen, 1366 x 768), ``full.png`` (the whole page) and
``<section>.png`` for each ``<section id>``; fails on a console error.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]


def main(report: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.resolve().as_uri(), wait_until="load")
        page.screenshot(path=str(out / "page.png"))
        page.screenshot(path=str(out / "full.png"), full_page=True)
        for sid in page.eval_on_selector_all("section", "els => els.map(e => e.id)"):
            page.locator(f"section#{sid}").screenshot(path=str(out / f"{sid}.png"))
            print(out / f"{sid}.png")
        browser.close()
    if errors:
        raise SystemExit(f"console errors: {errors}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
