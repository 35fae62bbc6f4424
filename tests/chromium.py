"""Headless Chromium for the report tests: open a page from file:// and take a
screenshot once model-viewer reports the model loaded and visible."""

import base64
import json
import os
import subprocess
import time
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")


class DevTools:
    """Minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``.

    Chromium reads NUL-terminated JSON commands on fd 3 and writes replies and
    events on fd 4.
    """

    def __init__(self, user_data_dir: Path, width: int, height: int):
        self._to_child_r, self._to_chrome = os.pipe()
        self._from_chrome, self._from_child_w = os.pipe()
        args = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                f"--user-data-dir={user_data_dir}",
                # software WebGL (SwiftShader) -- WebGL is otherwise off with --disable-gpu
                "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                f"--window-size={width},{height}", "--remote-debugging-pipe", "about:blank"]
        r, w = self._to_child_r, self._from_child_w

        def child_fds():
            a, b = os.dup(r), os.dup(w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(args, preexec_fn=child_fds, close_fds=False,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(self._to_child_r)
        os.close(self._from_child_w)
        self._buf = b""
        self._id = 0

    def send(self, method, params=None, session=None, timeout=60.0):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            while b"\0" not in self._buf:
                if time.time() > deadline:
                    raise TimeoutError(method)
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except Exception:
            pass
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_VIEWER_STATE = """(() => { const v = document.getElementById('viewer3d');
  if (!v) return null; const r = v.getBoundingClientRect();
  return {loaded: !!v.loaded, visible: !!v.modelIsVisible,
          box: [r.left, r.top, r.width, r.height]}; })()"""


VIEWER_STATE = """(() => { const v = document.getElementById('viewer3d');
  if (!v) return null; const r = v.getBoundingClientRect();
  return {loaded: !!v.loaded, visible: !!v.modelIsVisible,
          box: [r.left, r.top, r.width, r.height]}; })()"""


def capture_report(page: Path, profile_dir: Path, width: int, height: int,
                   scroll_to_viewer: bool = False):
    """Load ``page`` and return (viewer state dict or None, screenshot PNG bytes).

    The state is polled until the viewer's model is loaded and visible (150 s
    at most); two animation frames later the screenshot is taken. The state's
    ``box`` is the viewer's rectangle in screenshot pixels.
    """
    expr = (("document.getElementById('viewer3d').scrollIntoView();" if scroll_to_viewer
             else "") + VIEWER_STATE)
    tools = DevTools(profile_dir, width, height)
    try:
        target = [t for t in tools.send("Target.getTargets")["targetInfos"]
                  if t["type"] == "page"][0]
        sid = tools.send("Target.attachToTarget", {"targetId": target["targetId"],
                                                   "flatten": True})["sessionId"]
        tools.send("Page.enable", session=sid)
        tools.send("Page.navigate", {"url": page.as_uri()}, session=sid)   # file://
        state, deadline = None, time.time() + 150
        while time.time() < deadline:
            state = tools.send("Runtime.evaluate", {"expression": expr, "returnByValue": True},
                               session=sid)["result"].get("value")
            if state and state["loaded"] and state["visible"]:
                break
            time.sleep(0.5)
        tools.send("Runtime.evaluate", {
            "expression": "new Promise(r => requestAnimationFrame(() => "
                          "requestAnimationFrame(() => setTimeout(r, 500))))",
            "awaitPromise": True}, session=sid)
        data = tools.send("Page.captureScreenshot", {"format": "png"}, session=sid)["data"]
    finally:
        tools.close()
    return state, base64.b64decode(data)
