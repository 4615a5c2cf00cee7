"""Headless Chromium for the tests that check pages as a person sees them: a screenshot, and
what the browser laid out (sizes measured by a script in a copy of the page)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WINDOW = "--window-size=1400,1000"

# Appended to a copy of the page: after load, each chart image's natural and shown width.
MEASURE = """<script>
window.addEventListener('load', () => {
  const shown = [...document.querySelectorAll('figure[data-chart] img')].map(img => ({
    chart: img.closest('figure').dataset.chart,
    natural: img.naturalWidth,
    shown: img.getBoundingClientRect().width,
  }));
  const out = document.createElement('pre');
  out.id = 'measured';
  out.textContent = JSON.stringify(shown);
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    """The browser's path; the test is skipped (with the install command) without one."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed (apt-get install -y chromium; make services)")


def screenshot(page: Path, png: Path) -> Path:
    """A PNG of `page` as a 1400 x 1000 window shows it."""
    subprocess.run(
        [chromium(), *FLAGS, WINDOW, f"--screenshot={png}", page.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return png


def chart_widths(page: Path, work: Path) -> list[dict[str, Any]]:
    """Per chart image of `page` (a `figure[data-chart]`), its natural width in pixels and the
    width the browser shows it at, in a 1400-pixel-wide window."""
    probe = work / f"measure-{page.name}"
    text = page.read_text(encoding="utf-8")
    probe.write_text(text.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    out = subprocess.run(
        [chromium(), *FLAGS, WINDOW, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    found = re.search(r'<pre id="measured">(.*?)</pre>', out, flags=re.S)
    assert found, "the measuring script did not run"
    measured: list[dict[str, Any]] = json.loads(html.unescape(found.group(1)))
    return measured
