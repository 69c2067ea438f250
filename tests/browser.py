"""Headless Chromium (Debian's `chromium`) driven through the DevTools protocol over a websocket:
open a page at a given viewport, collect console messages, exceptions, log errors (CSP violations)
and every network request, evaluate expressions and take screenshots. No browser download."""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from pathlib import Path

import websocket

from zcrxprof import children

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Browser:
    """One headless Chromium with its own profile under ``workdir``; a context manager."""

    def __init__(self, workdir: Path, timeout_s: float = 60.0, allow_hosts: tuple[str, ...] = ()) -> None:
        """``allow_hosts``: the only hosts the page may reach (by default none: it stays offline)."""
        self.workdir, self.timeout_s = workdir, timeout_s
        self.resolver_rules = ", ".join(["MAP * ~NOTFOUND", *(f"EXCLUDE {h}" for h in allow_hosts)])
        self.proc: subprocess.Popen | None = None
        self.ws: websocket.WebSocket | None = None
        self.session = ""
        self._id = 0
        self.events: list[dict] = []

    def __enter__(self) -> "Browser":
        profile = self.workdir / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        self.proc = children.start(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--hide-scrollbars", f"--host-resolver-rules={self.resolver_rules}",
             "about:blank"],
            die_with_parent=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout_s
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not open its DevTools port (exit {self.proc.poll()})")
            time.sleep(0.1)
        port, path = port_file.read_text().split()[:2]
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=self.timeout_s,
                                              suppress_origin=True)
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        return self

    def __exit__(self, *exc) -> None:
        if self.ws is not None:
            self.ws.close()
        if self.proc is not None:
            children.stop(self.proc, grace_s=5)

    def call(self, method: str, **params) -> dict:
        """Send one command (to the page once attached) and return its result; events that arrive
        meanwhile are kept in ``events``."""
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if self.session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def _wait_event(self, method: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {self.timeout_s:g} s")
            self.events.append(json.loads(self.ws.recv()))

    def open(self, page: Path | str, width: int = 1280, height: int = 900) -> None:
        """Load ``page`` (a file, or a URL) in a ``width`` x ``height`` viewport and wait for its load event."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
        self.events.clear()
        self.call("Page.navigate", url=page if isinstance(page, str) else page.resolve().as_uri())
        self._wait_event("Page.loadEventFired")

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (returned by value)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluate: {result['exceptionDetails']}")
        return result["result"].get("value")

    def console(self) -> list[str]:
        """Console messages, uncaught exceptions and browser log errors (CSP violations among them)."""
        out = []
        for e in self.events:
            p = e.get("params") or {}
            if e.get("method") == "Runtime.consoleAPICalled":
                out.append(f"console.{p.get('type')}: " + " ".join(str(a.get("value", a.get("description")))
                                                              for a in p.get("args", [])))
            elif e.get("method") == "Runtime.exceptionThrown":
                out.append(f"exception: {p.get('exceptionDetails', {}).get('text')}")
            elif e.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error", "warning"):
                out.append(f"log: {p['entry'].get('text')}")
        return out

    def requests(self, page: Path) -> list[str]:
        """URLs the page asked for, other than itself and its inline ``data:`` images."""
        own = page.resolve().as_uri()
        urls = [(e.get("params") or {}).get("request", {}).get("url", "") for e in self.events
                if e.get("method") == "Network.requestWillBeSent"]
        return [u for u in urls if u != own and not u.startswith("data:")]

    def screenshot(self, out: Path, full_page: bool = False, scale: float = 1.0) -> Path:
        """A PNG of the viewport (or of the whole page, scaled) written to ``out``."""
        params: dict = {"format": "png"}
        if full_page:
            w = self.evaluate("document.documentElement.scrollWidth")
            hgt = self.evaluate("document.documentElement.scrollHeight")
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": w, "height": hgt,
                                                            "scale": scale})
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", **params)["data"]))
        return out
