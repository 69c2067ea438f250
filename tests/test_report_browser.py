"""The report as a reader sees it: each shipped dataset's report (and two datasets in one) opened in
headless Chromium at 1280 px through the DevTools protocol (tests/browser.py), every `<details>`
unfolded: no element wider than the viewport, every image decoded, no console message, no network
request. Screenshots land in .build/report-shots/ (the first screen and the whole page, scaled)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zcrxprof import dataset, paths

from browser import Browser

SHIPPED = ["host-copy-4topo", "host-copy-rate-sweep", "lab-nodev-4topo-kprobes"]
WIDTH = 1280
SHOTS = paths.build_dir() / "report-shots"

# Elements sticking out of the viewport, once every <details> is open (what a reader who unfolds
# everything would have to scroll sideways for).
OVERFLOW = """(() => {
  document.querySelectorAll('details').forEach(d => d.open = true);
  const vw = document.documentElement.clientWidth;
  const out = [];
  for (const e of document.body.querySelectorAll('*')) {
    const r = e.getBoundingClientRect();
    if (r.width > 0 && (r.right > vw + 1 || r.left < -1))
      out.push(`${e.tagName}.${e.className} ${Math.round(r.left)}-${Math.round(r.right)}: ` +
               (e.textContent || e.getAttribute('alt') || '').slice(0, 60));
  }
  return {vw, scroll: document.documentElement.scrollWidth, out: out.slice(0, 10)};
})()"""
IMAGES = """[...document.images].map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0}))"""


def _report(tmp_path: Path, *names: str) -> Path:
    out = tmp_path / ("+".join(names) + ".html")
    proc = subprocess.run([sys.executable, "-m", "zcrxprof", "report", *names, "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return out


def _check(browser: Browser, page: Path, shot_name: str) -> dict:
    browser.open(page, WIDTH)
    shots = (browser.screenshot(SHOTS / f"{shot_name}-first.png"),
             browser.screenshot(SHOTS / f"{shot_name}-page.png", full_page=True, scale=0.4))
    geometry = browser.evaluate(OVERFLOW)
    images = browser.evaluate(IMAGES)
    return {"geometry": geometry, "images": images, "console": browser.console(),
            "requests": browser.requests(page), "shots": shots}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with Browser(tmp_path_factory.mktemp("chromium")) as b:
        yield b


@pytest.mark.parametrize("names", [[n] for n in SHIPPED] + [["host-copy-4topo", "lab-nodev-4topo-kprobes"]],
                         ids=lambda n: "+".join(n))
def test_report_fits_1280px_decodes_every_image_and_stays_offline(browser, tmp_path, names):
    for name in names:
        dataset.resolve(name)        # shipped: a missing one fails here, by name
    page = _report(tmp_path, *names)
    result = _check(browser, page, "+".join(names))
    g = result["geometry"]
    assert g["vw"] == WIDTH and g["scroll"] <= WIDTH and g["out"] == [], g
    assert len(result["images"]) >= 3 and all(i["ok"] for i in result["images"]), result["images"]
    assert result["console"] == []
    assert result["requests"] == []
    first = result["shots"][0].read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n" and len(first) > 20_000     # text, not a blank page
    text = page.read_text()
    if len(names) == 2:
        assert 'id="s-comparison"' in text
    # the first screen answers: the claims come before the contents list and any section
    assert text.index("The claims, as this recording answers them") < text.index("<nav>")


def test_the_browser_checks_catch_overflow_broken_images_requests_and_console_errors(browser, tmp_path):
    # control: a page doing each wrong thing once must be caught by each check
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><body><div style="width:3000px">wide</div>'
                   '<img alt="broken" src="data:image/png;base64,AAAA">'
                   '<img alt="remote" src="http://127.0.0.1:9/x.png">'
                   '<script>console.error("boom")</script></body>')
    result = _check(browser, bad, "control")
    assert result["geometry"]["scroll"] > WIDTH and any("wide" in e for e in result["geometry"]["out"])
    assert {i["alt"]: i["ok"] for i in result["images"]} == {"broken": False, "remote": False}
    assert any("127.0.0.1:9" in u for u in result["requests"])
    assert any("boom" in line for line in result["console"])


def test_hostile_dataset_strings_render_inert(browser, tmp_path):
    # a dataset whose strings carry markup: the page shows them as text, runs nothing, loads nothing
    import json
    import shutil

    hostile = "<script>console.error('x')</script><img src=http://127.0.0.1:9/leak>"
    copy = tmp_path / "hostile"
    shutil.copytree(dataset.resolve("host-copy-4topo"), copy)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["command_line"], meta["notes"] = hostile, [hostile]
    (copy / "metadata.json").write_text(json.dumps(meta))
    page = _report(tmp_path, str(copy))
    result = _check(browser, page, "hostile")
    assert result["console"] == [] and result["requests"] == []
    assert browser.evaluate("document.querySelectorAll('script').length") == 0
    assert hostile in browser.evaluate("document.body.innerText")
