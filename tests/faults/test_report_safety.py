"""Report safety: HTML/script content in *every* string of a dataset (each metadata string, each
string column of each table) appears escaped in the report, and no script runs when headless
Chromium opens it — checked with the report's Content-Security-Policy removed, so escaping alone
must hold (the CSP is a second wall, not the first)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from zcrxprof import cli, schema
from tally import count, has_traceback

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
MARK = "zcxpwned"
PAYLOADS = [
    f"<script>document.documentElement.setAttribute('{MARK}','script')</script>",
    f"<img src=x onerror=\"document.documentElement.setAttribute('{MARK}','img')\">",
    f"\"><svg onload=\"document.documentElement.setAttribute('{MARK}','svg')\">",
    f"'><iframe srcdoc=\"<script>parent.document.documentElement.setAttribute('{MARK}','iframe')</script>\">",
]
KEEP = {"status", "backend", "role", "thread", "entity", "metric", "probe", "source"}   # keys the analysis joins on


def hostile(value: str, i: int) -> str:
    return f"{value}{PAYLOADS[i % len(PAYLOADS)]}"


def poison_json(obj, counter: list[int]):
    """Every string in a JSON value with a payload appended."""
    if isinstance(obj, str):
        counter[0] += 1
        return hostile(obj, counter[0])
    if isinstance(obj, list):
        return [poison_json(v, counter) for v in obj]
    if isinstance(obj, dict):
        return {k: poison_json(v, counter) for k, v in obj.items()}
    return obj


def poison(src: Path, dest: Path) -> int:
    """A copy of dataset ``src`` with payloads in every string; returns how many strings were changed."""
    shutil.copytree(src, dest)
    n = [0]
    meta = json.loads((dest / "metadata.json").read_text())
    keep = {k: meta[k] for k in ("schema_version", "backend") if k in meta}
    meta = {**poison_json(meta, n), **keep}
    meta["notes"] = list(meta.get("notes") or []) + PAYLOADS
    (dest / "metadata.json").write_text(json.dumps(meta))
    for table, spec in schema.TABLES.items():
        f = dest / f"{table}.parquet"
        frame = pd.read_parquet(f)
        for col in spec.columns:
            if col.dtype == "string" and col.name not in KEEP and len(frame):
                frame[col.name] = [hostile(v, i) for i, v in enumerate(frame[col.name].astype(str))]
                n[0] += len(frame)
        frame.to_parquet(f, index=False)
    return n[0]


def dump_dom(page: Path, workdir: Path) -> str:
    """The DOM after headless Chromium loaded ``page`` and ran whatever scripts it would."""
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--host-resolver-rules=MAP * ~NOTFOUND",
         f"--user-data-dir={workdir / 'profile'}", "--virtual-time-budget=3000", "--dump-dom",
         page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_the_check_sees_a_script_that_runs(tmp_path):
    """Control: the same Chromium check does see each payload run on an unescaped page."""
    for i, payload in enumerate(PAYLOADS[:3]):
        page = tmp_path / f"bad{i}.html"
        page.write_text(f"<!doctype html><html><body><p>{payload}</p></body></html>")
        dom = dump_dom(page, tmp_path)
        assert re.search(rf"<html[^>]*{MARK}=", dom), (payload, dom[:500])


def test_hostile_dataset_strings_are_escaped_and_inert(small_dataset, tmp_path, capsys):
    ds = tmp_path / "hostile"
    changed = poison(small_dataset, ds)
    count("bad inputs tried: hostile strings in a dataset", changed)
    out = tmp_path / "r.html"
    capsys.readouterr()
    rc = cli.main(["report", str(ds), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 0 and not has_traceback(err), err
    text = out.read_text()
    # escaped: no payload tag made it into the HTML as markup
    for tag in ("<script", "<img src=x", "<svg", "<iframe"):
        assert tag not in text.lower(), tag
    assert "&lt;script&gt;" in text and "&lt;img src=x onerror" in text
    # inert: with the CSP taken out, Chromium still runs nothing
    no_csp = tmp_path / "no-csp.html"
    no_csp.write_text(re.sub(r"<meta[^>]+Content-Security-Policy[^>]*>", "", text, flags=re.I))
    assert "Content-Security-Policy" not in no_csp.read_text()
    dom = dump_dom(no_csp, tmp_path)
    assert "<html" in dom and MARK + "=" not in dom.split(">", 2)[0] + dom.split("<body", 1)[0]
    assert not re.search(rf"<html[^>]*{MARK}=", dom)
