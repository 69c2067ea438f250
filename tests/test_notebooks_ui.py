"""The notebooks as a reader runs them: a JupyterLab started here (private home, config, data,
runtime, settings and workspaces; the kernel is this environment's python) serves copies of
notebooks/ pointed at the committed datasets, as tests/test_notebooks.py runs them. One headless
Chromium (tests/browser.py) opens each notebook in a workspace of its own at 1280x900 (a blank page
in between), runs every cell with the Run menu's "Run All Cells" command, and checks the page: every code cell
executed once, in order; no error output; as many figures as the same copy makes when executed
headlessly (nbclient), each decoded; no error from the page; no request leaves the server.
Screenshots land in .build/notebook-shots/ (the first screen, and the whole notebook scaled).
It runs with the system tests, not beside them (tests/conftest.py OFFLINE_MODULES): a veth made on
the host while a page loads makes Chromium abort its requests (net::ERR_NETWORK_CHANGED)."""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import papermill
import pytest

from zcrxprof import children, dataset, paths

from browser import CHROMIUM, Browser

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# each notebook's parameters: the committed datasets tests/test_notebooks.py executes it against
PARAMETERS = {
    "01-cover-letter-motivation.ipynb": {"dataset": "host-copy-4topo"},
    "02-topology-comparison.ipynb": {"dataset": "host-copy-4topo", "sweep": "host-copy-rate-sweep"},
    "03-kernel-view.ipynb": {"dataset": "lab-nodev-4topo-kprobes"},
}
RAISES = "raises.ipynb"        # the control: a notebook whose second cell raises
SHOTS = paths.build_dir() / "notebook-shots"
VENV_BIN = Path(sys.executable).parent
START_TIMEOUT_S = 90           # JupyterLab answering; the page showing an idle kernel
RUN_TIMEOUT_S = 120            # every cell run (each notebook takes ~3 s headless on an idle machine)

# user settings of the private JupyterLab: every cell attached to the page (no virtual scrolling,
# so each cell's prompt and outputs are in the DOM), no news or update checks (no network)
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
}

# what the page may warn about: terminals are switched off here (--ServerApp.terminals_enabled=False)
EXPECTED_WARNINGS = {"Disabling terminals plugin because they are not available on the server"}
# the notebook's panel, found through the app object (--LabApp.expose_app_in_browser) by its path
PANEL = "[...window.jupyterapp.shell.widgets('main')].find(w => w.context && w.context.path === {path})"
# the notebook as the page shows it: kernel status; per code cell its prompt, its outputs in the
# notebook's model (kind and MIME types; an error's name and value) and how many of them the page
# rendered; stderr text on the page; every image in an output and whether it decoded
STATE = """(() => {
  if (!window.jupyterapp) return null;
  const panel = %s;
  if (!panel || !panel.context.isReady) return null;
  const text = e => (e.textContent || '').trim();
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const code = panel.content.widgets.filter(c => c.model.type === 'code');
  const outputs = code.map(c => c.model.outputs.toJSON());
  return {
    command: window.runAll || '',
    kernel: kernel ? kernel.status : '',
    prompts: code.map(c => text(c.node.querySelector('.jp-InputArea-prompt'))),
    outputs: outputs.map(os => os.map(o => [o.output_type, ...Object.keys(o.data || {}).sort()].join(' '))),
    rendered: code.map(c => c.node.querySelectorAll('.jp-OutputArea-output').length),
    errors: outputs.flat().filter(o => o.output_type === 'error').map(o => `${o.ename}: ${o.evalue}`),
    stderr: [...panel.node.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
            .map(e => text(e).slice(-400)),
    images: [...panel.node.querySelectorAll('.jp-OutputArea-output img')]
            .map(i => ({ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth, h: i.naturalHeight,
                        png: i.src.startsWith('data:image/png;base64,')})),
  };
})()"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A running JupyterLab (its URL, token, served directory, process and log), and the headless
    run of the same copies beside it."""

    def __init__(self, url: str, token: str, root: Path, proc: subprocess.Popen, log: Path,
                 headless: subprocess.Popen, headless_dir: Path) -> None:
        self.url, self.token, self.root, self.proc, self.log = url, token, root, proc, log
        self._headless, self.headless_dir = headless, headless_dir

    def headless(self, name: str) -> nbformat.NotebookNode:
        """``name`` as the headless run (nbclient) left it, once that run has ended."""
        try:
            self._headless.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the headless run took over {RUN_TIMEOUT_S} s") from None
        log = (self.headless_dir / "headless.log").read_text()
        assert self._headless.returncode == 0, f"the headless run failed: {log[-3000:]}"
        return nbformat.read(self.headless_dir / name, as_version=4)

    def api(self, path: str, method: str = "GET") -> object:
        req = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as reply:
            body = reply.read()
        return json.loads(body) if body else None


def _environment(tmp: Path) -> dict[str, str]:
    """This environment with every Jupyter, IPython and matplotlib state directory under ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "IPYTHON"))}
    private = {"HOME": "home", "JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data",
               "JUPYTER_RUNTIME_DIR": "runtime", "JUPYTERLAB_SETTINGS_DIR": "settings",
               "JUPYTERLAB_WORKSPACES_DIR": "workspaces", "IPYTHONDIR": "ipython",
               "MPLCONFIGDIR": "matplotlib", "XDG_CONFIG_HOME": "home/.config",
               "XDG_CACHE_HOME": "home/.cache", "XDG_DATA_HOME": "home/.local/share"}
    for variable, sub in private.items():
        (tmp / sub).mkdir(parents=True, exist_ok=True)
        env[variable] = str(tmp / sub)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    return env


def _copies(into: Path, extra: dict[str, nbformat.NotebookNode]) -> None:
    """Each notebook, its parameters injected as papermill injects them (the datasets' paths), and
    the ``extra`` notebooks, written under ``into``."""
    into.mkdir(parents=True)
    for name, values in PARAMETERS.items():
        nb = papermill.iorw.load_notebook_node(str(NOTEBOOKS / name))
        nb = papermill.parameterize.parameterize_notebook(
            nb, {k: str(dataset.resolve(v).resolve()) for k, v in values.items()})
        nbformat.write(nb, into / name)
    for name, nb in extra.items():
        nbformat.write(nb, into / name)


def _raising_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3 (ipykernel)"}})
    nb.cells = [nbformat.v4.new_code_cell("%matplotlib inline\nimport matplotlib.pyplot as plt\n"
                                          "plt.plot([1, 2, 3]);"),
                nbformat.v4.new_code_cell("raise ValueError('the data contradicts the claim')"),
                nbformat.v4.new_code_cell("y = 2")]
    return nb


def _outputs(nb: nbformat.NotebookNode) -> list[list[str]]:
    """Per code cell, its outputs' kinds and MIME types, as STATE gives them."""
    return [[" ".join([o.output_type, *sorted(o.get("data", {}))]) for o in c.outputs]
            for c in nb.cells if c.cell_type == "code"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving the copies, and beside its start-up the same copies executed headlessly."""
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (scripts/setup.sh installs Debian's)"
    assert (VENV_BIN / "jupyter-lab").exists(), f"no jupyter-lab in {VENV_BIN} (pyproject: jupyterlab)"
    shipped = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert shipped == sorted(PARAMETERS), f"notebooks/ holds {shipped}: give each its datasets in PARAMETERS"
    tmp = tmp_path_factory.mktemp("jupyterlab")
    env = _environment(tmp)
    for name, values in SETTINGS.items():
        (tmp / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "settings" / name).write_text(json.dumps(values))
    # the kernel the notebooks ask for is this environment's ipykernel
    specs = json.loads(subprocess.run([str(VENV_BIN / "jupyter"), "kernelspec", "list", "--json"], env=env,
                                      capture_output=True, text=True, timeout=60, check=True).stdout)
    spec = specs["kernelspecs"]["python3"]
    assert Path(spec["resource_dir"]).is_relative_to(sys.prefix), spec
    root, headless = tmp / "served", tmp / "headless"
    _copies(root, {RAISES: _raising_notebook()})
    _copies(headless, {})
    token, port = secrets.token_hex(16), _free_port()
    log = tmp / "jupyterlab.log"
    with (headless / "headless.log").open("wb") as out:
        run = children.start([str(VENV_BIN / "jupyter-execute"), "--inplace", "--kernel_name=python3",
                              "--timeout=300", *sorted(PARAMETERS)],
                             die_with_parent=True, env=env, cwd=headless, stdin=subprocess.DEVNULL,
                             stdout=out, stderr=subprocess.STDOUT)
    with log.open("wb") as out:
        proc = children.start(
            [str(VENV_BIN / "jupyter-lab"), "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
             "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
             "--ServerApp.terminals_enabled=False", "--LabApp.news_url=", "--LabApp.expose_app_in_browser=True",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             *(["--allow-root"] if os.geteuid() == 0 else [])],
            die_with_parent=True, env=env, cwd=root, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT)
    server = Lab(f"http://127.0.0.1:{port}", token, root, proc, log, run, headless)
    kernels: set[int] = set()
    left: list[int] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                server.api("status")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab did not answer: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield server
    finally:
        # kernels run in sessions of their own: found as the children of what started them
        kernels = set(children.descendants(run.pid))
        children.stop(run, grace_s=5, sig=signal.SIGTERM)
        if proc.poll() is None:
            kernels |= set(children.descendants(proc.pid))
            for kernel in server.api("kernels"):
                server.api(f"kernels/{kernel['id']}", method="DELETE")
        children.stop(proc, grace_s=10, sig=signal.SIGTERM)      # the server's stop: its kernels too
        deadline = time.monotonic() + 10
        while any(children.alive(pid) for pid in kernels) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [pid for pid in kernels if children.alive(pid)]     # failing the module, after a kill
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes outlived JupyterLab: {left}"


def _wait(browser: Browser, path: str, done, what: str, timeout_s: float) -> dict:
    expr = STATE % PANEL.format(path=json.dumps(path))
    deadline = time.monotonic() + timeout_s
    while not done(state := browser.evaluate(expr)):
        assert time.monotonic() < deadline, f"{path}: {what} within {timeout_s:g} s; last seen: {state}"
        time.sleep(0.25)
    return state


def _executed(prompt: str) -> bool:
    return prompt.startswith("[") and prompt.endswith("]:") and prompt[1:-2].isdigit()


def _page_errors(browser: Browser) -> list[str]:
    """console errors and warnings (but EXPECTED_WARNINGS), uncaught exceptions and browser log
    errors of the page (console.log/info/debug are JupyterLab's progress notes: not checked)."""
    out = []
    for e in browser.events:
        p = e.get("params") or {}
        if e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert", "warning"):
            line = " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", []))
            if not (p["type"] == "warning" and line in EXPECTED_WARNINGS):
                out.append(f"console.{p['type']}: {line}")
        elif e.get("method") == "Runtime.exceptionThrown":
            details = p.get("exceptionDetails", {})
            out.append(f"exception: {details.get('text')} {details.get('exception', {}).get('description', '')}")
        elif e.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
    return out


def _foreign_requests(browser: Browser, lab: Lab) -> list[str]:
    """Requests (websockets too) the page made anywhere but the server."""
    urls = [(e.get("params") or {}).get("request", {}).get("url", "") for e in browser.events
            if e.get("method") == "Network.requestWillBeSent"]
    urls += [(e.get("params") or {}).get("url", "") for e in browser.events
             if e.get("method") == "Network.webSocketCreated"]
    ws = lab.url.replace("http://", "ws://", 1)
    return [u for u in urls if not u.startswith((lab.url + "/", ws + "/", "data:", "blob:"))]


@pytest.fixture(scope="module")
def browser(lab, tmp_path_factory):
    """One headless Chromium for the module's notebooks (each opens in a workspace of its own)."""
    with Browser(tmp_path_factory.mktemp("chromium"), timeout_s=START_TIMEOUT_S, allow_hosts=("127.0.0.1",)) as b:
        yield b


def run_all_through_the_ui(lab: Lab, browser: Browser, name: str) -> dict:
    """Open ``name`` in a fresh workspace (after a blank page, so nothing of the notebook before
    reaches this one's checks), run every cell with Run → Run All Cells (its command, run by the
    app object), wait until the kernel is idle with every code cell run or none left queued; the
    page's state (see STATE), its errors and requests, and screenshots."""
    stem = Path(name).stem
    browser.open("about:blank")
    browser.open(f"{lab.url}/lab/workspaces/{stem}/tree/{name}?token={lab.token}", 1280, 900)
    _wait(browser, name, lambda s: s and s["kernel"] == "idle" and s["prompts"], "no idle kernel",
          START_TIMEOUT_S)
    # started, not awaited: its promise settles when the last cell has run, which is watched below
    browser.evaluate("window.runAll = 'started'; window.jupyterapp.commands.execute('runmenu:run-all')"
                     ".then(() => { window.runAll = 'done'; }, e => { window.runAll = 'failed: ' + e; }); true")
    _wait(browser, name, lambda s: s["command"] != "started" and s["kernel"] == "idle"
          and not any("*" in p for p in s["prompts"]), "cells still running", RUN_TIMEOUT_S)
    time.sleep(0.3)       # the last image's decode
    state = _wait(browser, name, lambda s: s["kernel"] == "idle", "idle", 10)
    panel = PANEL.format(path=json.dumps(name))
    browser.evaluate(f"{panel}.content.outerNode.scrollTop = 0")      # Run All left it at the end
    time.sleep(0.2)
    state["shots"] = [browser.screenshot(SHOTS / f"{stem}-first.png")]
    # the whole notebook: the window made as much taller as the notebook's cells are taller than
    # the part of it shown, then the page scaled down
    extra = browser.evaluate(f"(n => n.viewportNode.scrollHeight - n.node.clientHeight)({panel}.content)")
    browser.call("Emulation.setDeviceMetricsOverride", width=1280, height=900 + max(0, int(extra)),
                 deviceScaleFactor=1, mobile=False)
    time.sleep(0.5)
    state["shots"].append(browser.screenshot(SHOTS / f"{stem}-notebook.png", full_page=True, scale=0.5))
    state["page_errors"] = _page_errors(browser)
    state["requests"] = _foreign_requests(browser, lab)
    for session in lab.api("sessions"):        # the notebook's kernel goes with its page
        if session["path"] == name:
            lab.api(f"sessions/{session['id']}", method="DELETE")
    return state


def _problems(state: dict) -> list[str]:
    """What a reader would see go wrong."""
    problems = [f"Run All Cells: {state['command']}"] if state["command"] != "done" else []
    problems += [f"cell not executed: prompt {p!r}" for p in state["prompts"] if not _executed(p)]
    problems += [f"error output: {e}" for e in state["errors"]]
    problems += [f"error on stderr: {e}" for e in state["stderr"] if "Traceback" in e or "Error" in e]
    problems += [f"cell {i}: {len(kinds)} outputs, {n} rendered" for i, (kinds, n)
                 in enumerate(zip(state["outputs"], state["rendered"])) if len(kinds) != n]
    problems += [f"image not decoded ({i})" for i in state["images"] if not (i["ok"] and i["png"])]
    problems += state["page_errors"]
    problems += [f"request outside the server: {u}" for u in state["requests"]]
    return problems


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_notebook_runs_through_jupyterlab_with_every_figure_and_no_error(lab, browser, name):
    state = run_all_through_the_ui(lab, browser, name)
    problems = _problems(state)
    assert not problems, f"{name}, run in JupyterLab:\n" + "\n".join(problems)
    # each code cell ran once, in order, in the notebook's own fresh kernel, and showed the outputs
    # (kinds and MIME types, streams aside) that the same copy made headless: every figure among them
    headless = _outputs(lab.headless(name))
    assert state["prompts"] == [f"[{i}]:" for i in range(1, len(headless) + 1)]
    without_streams = lambda cells: [[k for k in kinds if not k.startswith("stream")] for kinds in cells]
    assert without_streams(state["outputs"]) == without_streams(headless)
    figures = sum(" image/png" in k for kinds in headless for k in kinds)
    assert len(state["images"]) == figures > 0
    for shot in state["shots"]:
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_a_raising_cell_is_reported_by_the_same_checks(lab, browser):
    state = run_all_through_the_ui(lab, browser, RAISES)
    problems = _problems(state)
    # the error as the kernel reported it (the model) and as the page shows it (its traceback), and
    # Run All stopping there: the cell after it is not run
    assert [p.split(":")[0] for p in problems] == ["cell not executed", "error output", "error on stderr"], problems
    assert "ValueError: the data contradicts the claim" in problems[1] and "contradicts" in problems[2]
    assert state["prompts"] == ["[1]:", "[2]:", "[ ]:"]
    assert len(state["images"]) == 1 and state["images"][0]["ok"]
