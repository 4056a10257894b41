"""``ganlab report`` in a real headless Chromium: the page of real runs loads cleanly and lays out as meant.

The store holds two real ``ganlab run`` populations (sigmoid and sparsemax, two seeds each, TINY ring8
runs that log sample scatters). The browser is driven through the DevTools protocol over a pipe
(``--remote-debugging-pipe``: JSON messages ending in NUL on file descriptors 3 and 4, no library
needed), which is how the test hears the console: every console error, uncaught exception and
blocked request (the page's Content Security Policy blocks anything outside the file, and says so
there) is collected.
"""

from __future__ import annotations

import base64
import io
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import TINY, run_in_process

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium is not installed (.ci/run installs it)"),
              pytest.mark.slow]
#: wide enough for a picture of 1200 pixels (three histograms side by side) at its own size
WIDTH = 1440
RUN = ["run", "--experiment", "heads", "--dataset", "ring8", "--arch", "mlp", "--set", "arch.hidden_scale=0.125",
       *TINY, "--seeds", "0-1", "--eval-every", "2", "--sample-every", "2"]


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe: one page, its console collected."""

    def __init__(self, profile: Path) -> None:
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        # bash puts the pipe's ends on the descriptors Chromium reads (3) and writes (4) (dash's redirections
        # take one-digit descriptors only, and a test process has more open)
        line = (f"exec {CHROMIUM} --headless --no-sandbox --disable-gpu --no-first-run --disable-sync "
                f"--disable-background-networking --disable-component-update --user-data-dir={profile} "
                f"--remote-debugging-pipe 3<&{commands_read} 4>&{replies_write}")
        self.process = subprocess.Popen(["bash", "-c", line], pass_fds=(commands_read, replies_write),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(commands_read)
        os.close(replies_write)
        self._buffer, self._id, self.events = b"", 0, []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable", session=True)
        self.send("Emulation.setDeviceMetricsOverride", session=True, width=WIDTH, height=900, deviceScaleFactor=1,
                  mobile=False)

    def send(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params,
                   **({"sessionId": self.session} if session else {})}
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        reply = self._next(lambda m: m.get("id") == self._id)
        assert "error" not in reply, reply
        return reply["result"]

    def _next(self, wanted: Any, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if wanted(message):
                    return message
                self.events.append(message)
            ready, _, _ = select.select([self._replies], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise EOFError("Chromium closed the pipe")
            self._buffer += chunk

    def open(self, path: Path) -> None:
        self.events.clear()
        self.send("Page.navigate", session=True, url=path.as_uri())
        self._next(lambda m: m.get("method") == "Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        reply = self.send("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        return reply["result"].get("value")

    def console_errors(self) -> list[str]:
        self.evaluate("0")  # a round trip: what the page logged while loading has arrived
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(params["entry"]["text"])
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                errors.append(json.dumps(params["args"]))
            elif method == "Runtime.exceptionThrown":
                errors.append(params["exceptionDetails"]["text"])
        return errors

    def screenshot(self) -> Any:
        from PIL import Image

        png = self.send("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)["data"]
        return Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB")

    def close(self) -> None:
        try:
            self.send("Browser.close")
        finally:
            self.process.wait(timeout=60)
            os.close(self._commands)
            os.close(self._replies)


#: per image: where the page drew it, its decoded size, and its source
IMAGES = ("[...document.images].map(i => { const r = i.getBoundingClientRect(); return {section: i.closest('section').id,"
          " complete: i.complete, width: i.naturalWidth, height: i.naturalHeight, src: i.src,"
          " left: r.left + scrollX, top: r.top + scrollY, right: r.right + scrollX, bottom: r.bottom + scrollY}; })")
SECTIONS = "[...document.querySelectorAll('main > section')].map(s => [s.id, s.getBoundingClientRect().top + scrollY])"


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory, template_store: Path) -> dict[str, Any]:
    """Two real populations, their report, and what Chromium made of it (and of a page that reaches out)."""
    root = tmp_path_factory.mktemp("report-browser")
    (root / "mlruns").mkdir()
    shutil.copy(template_store, root / "mlruns" / "mlflow.db")
    for head in ("sigmoid", "sparsemax"):
        done = run_in_process([*RUN, "--head", head], root)
        assert done.returncode == 0, done.stderr[-2000:]
    done = run_in_process(["report", "heads", "-o", "report.html"], root)
    assert done.returncode == 0, done.stderr[-2000:]
    page = root / "report.html"
    # a control: the same page with one picture from the network, which the policy must block and report
    leaky = root / "leaky.html"
    leaky.write_text(page.read_text(encoding="utf-8").replace("</main>", '<img src="https://example.com/x.png"></main>'),
                     encoding="utf-8")
    browser = Browser(root / "profile")
    try:
        browser.open(leaky)
        leaky_errors = browser.console_errors()
        browser.open(page)
        seen = {"errors": browser.console_errors(), "images": browser.evaluate(IMAGES),
                "sections": browser.evaluate(SECTIONS), "leaky_errors": leaky_errors,
                "widths": browser.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]"),
                "screenshot": browser.screenshot(), "html": page.read_text(encoding="utf-8")}
    finally:
        browser.close()
    return seen


def test_the_page_loads_without_console_errors_and_every_image_decodes(seen):
    assert any("Content Security Policy" in e and "example.com" in e for e in seen["leaky_errors"]), \
        seen["leaky_errors"]  # the console is heard, and the policy keeps the page to itself
    assert seen["errors"] == []
    images = seen["images"]
    assert len(images) == seen["html"].count("<img ")
    assert all(i["complete"] and i["width"] > 0 and i["height"] > 0 for i in images), images
    by_section = {}
    for image in images:
        by_section.setdefault(image["section"], []).append(image)
    assert len(by_section["curves"]) == 3  # the modes metric's three: captured, hq_percent, kl_uniform
    assert len(by_section["pictures-samples"]) == 2  # one per head


def test_the_screenshot_shows_the_sections_in_order_and_each_picture_where_the_layout_put_it(seen):
    from PIL import Image, ImageChops, ImageStat

    order = [name for name, _ in seen["sections"]]
    assert order[:4] == ["curves", "finals", "tests", "pictures-samples"]
    tops = [top for _, top in seen["sections"]]
    assert tops == sorted(tops) and len(set(tops)) == len(tops)  # one below the other, none on top of another
    scrolled, visible = seen["widths"]
    assert scrolled <= visible <= WIDTH  # nothing runs off the right edge
    shot = seen["screenshot"]
    assert shot.width == visible and shot.height >= tops[-1]
    assert max(ImageStat.Stat(shot).stddev) > 20  # not a blank page
    samples = [i for i in seen["images"] if i["section"] == "pictures-samples"]
    assert samples[0]["top"] == samples[1]["top"] and samples[0]["right"] < samples[1]["left"]  # side by side
    for image in seen["images"]:
        box = tuple(round(image[k]) for k in ("left", "top", "right", "bottom"))
        # compared as thumbnails, so that the browser's own scaling does not count, and against the share of
        # the picture that is not white background: a blank, another kind of picture or one cut off does count
        thumbnail = (48, max(1, round(48 * (box[3] - box[1]) / (box[2] - box[0]))))
        drawn = shot.crop(box).resize(thumbnail, Image.BOX)
        logged = Image.open(io.BytesIO(base64.b64decode(image["src"].split(",", 1)[1]))).convert("RGB")
        logged = logged.resize(thumbnail, Image.BOX)
        mismatch = max(ImageStat.Stat(ImageChops.difference(drawn, logged)).mean)
        ink = max(ImageStat.Stat(ImageChops.difference(Image.new("RGB", thumbnail, "white"), logged)).mean)
        assert mismatch < 0.2 * ink, (image["section"], box, mismatch, ink)  # this picture is painted there
