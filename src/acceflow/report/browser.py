"""Quality control of a dossier in a real browser (headless Chromium).

:func:`check_in_browser` opens the dossier in headless Chromium three times, offline:

1. as written, with Chromium's logging on: every console message (errors, Content-Security-Policy
   violations, failed loads) is collected;
2. a copy with a small script appended (the copy's CSP allows that inline script, nothing else):
   on ``load`` it checks that every image is complete with a non-zero natural size and draws it
   on a canvas (which forces the pixel data to decode), and writes the outcome into the DOM,
   which ``--dump-dom`` returns;
3. as written, to take a full-width screenshot (a PNG kept as a QC artefact).

:func:`print_pdf` prints the dossier to PDF (A4; the page's ``@media print`` rules put each section on a
new page and keep figures whole) and :func:`screenshot` takes a picture of the top of the page.

Chromium is found as ``chromium``, ``chromium-browser``, ``google-chrome`` on ``PATH`` (or the
``ACCEFLOW_CHROMIUM`` environment variable). The flags work as root in containers.
"""

from __future__ import annotations

import html as _html
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BrowserCheck", "check_in_browser", "find_chromium", "print_pdf", "screenshot"]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars"]

_CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\]\s*(.*)")
_PROBE = """<script>
window.addEventListener("load", () => {
  const out = [];
  for (const img of Array.from(document.images)) {
    let status = "ok";
    if (!img.complete || !(img.naturalWidth > 0 && img.naturalHeight > 0)) {
      status = "not decoded";
    } else {
      try {  // drawing forces a full decode of the pixel data
        const c = document.createElement("canvas");
        c.width = Math.min(img.naturalWidth, 64); c.height = Math.min(img.naturalHeight, 64);
        c.getContext("2d").drawImage(img, 0, 0, c.width, c.height);
      } catch (e) { status = "failed: " + e; }
    }
    out.push({alt: img.alt, status: status, width: img.naturalWidth, height: img.naturalHeight});
  }
  const pre = document.createElement("pre");
  pre.id = "acceflow-qc";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


@dataclass
class BrowserCheck:
    """What the browser saw: console messages, one entry per image, the screenshot path."""

    console: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    screenshot: str | None = None

    @property
    def failed_images(self) -> list[dict]:
        return [i for i in self.images if i.get("status") != "ok"]

    @property
    def ok(self) -> bool:
        return not self.console and not self.failed_images and self.screenshot is not None


def find_chromium() -> str | None:
    """Path of a Chromium (or Chrome) executable, or ``None``."""
    env = os.environ.get("ACCEFLOW_CHROMIUM")
    if env:
        return env if shutil.which(env) or os.path.isfile(env) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(chromium: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="acceflow-chromium-") as profile:
        return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout, check=False)


def check_in_browser(html_path: str | os.PathLike, screenshot: str | os.PathLike, *, chromium: str | None = None,
                     width: int = 1280, height: int = 4000, timeout: float = 120) -> BrowserCheck:
    """Open ``html_path`` in headless Chromium; collect console messages and image decoding, take a screenshot.

    Raises ``FileNotFoundError`` when no Chromium is found.
    """
    chromium = chromium or find_chromium()
    if not chromium:
        raise FileNotFoundError("no chromium / google-chrome executable found (set ACCEFLOW_CHROMIUM)")
    page = Path(html_path).resolve()
    url = page.as_uri()
    result = BrowserCheck()

    proc = _run(chromium, ["--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", url],
                timeout)
    result.console = [m.group(1) for m in map(_CONSOLE.search, proc.stderr.splitlines()) if m]

    text = page.read_text(encoding="utf-8")
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>',
                  '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
                  'style-src \'unsafe-inline\'; script-src \'unsafe-inline\'">', text, count=1)
    text = text.replace("</body>", _PROBE + "</body>", 1)
    with tempfile.TemporaryDirectory(prefix="acceflow-qc-") as tmp:
        probe = Path(tmp) / page.name
        probe.write_text(text, encoding="utf-8")
        proc = _run(chromium, ["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], timeout)
    m = re.search(r'<pre id="acceflow-qc">(.*?)</pre>', proc.stdout, re.S)
    if m:
        result.images = json.loads(_html.unescape(m.group(1)))
    else:
        result.images = [{"alt": "(probe)", "status": "the image probe did not report (page failed to load?)"}]

    shot = Path(screenshot).resolve()
    shot.parent.mkdir(parents=True, exist_ok=True)
    _run(chromium, [f"--window-size={width},{height}", f"--screenshot={shot}", url], timeout)
    result.screenshot = str(shot) if shot.is_file() and shot.stat().st_size > 0 else None
    return result


def print_pdf(html_path: str | os.PathLike, pdf_path: str | os.PathLike, *, chromium: str | None = None,
              timeout: float = 300) -> Path:
    """Print ``html_path`` to ``pdf_path`` with headless Chromium (``--print-to-pdf``, no header or footer).

    The page's own print style sheet decides the layout (the dossier's: A4, a page break before each
    section, figures and tables not split). The PDF is written next to its destination first and moved
    into place, so a failed print leaves no partial file.

    Raises ``FileNotFoundError`` when no Chromium is found, ``RuntimeError`` (with Chromium's last
    messages) when it writes no PDF.
    """
    chromium = chromium or find_chromium()
    if not chromium:
        raise FileNotFoundError("no chromium / google-chrome executable found (install Debian's chromium, or set "
                                "ACCEFLOW_CHROMIUM to its path)")
    page = Path(html_path).resolve()
    out = Path(pdf_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.pdf")
    tmp.unlink(missing_ok=True)
    proc = _run(chromium, ["--no-pdf-header-footer", "--run-all-compositor-stages-before-draw",
                           "--virtual-time-budget=10000", f"--print-to-pdf={tmp}", page.as_uri()], timeout)
    if not tmp.is_file() or tmp.stat().st_size == 0 or not tmp.read_bytes().startswith(b"%PDF"):
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"chromium wrote no PDF of {page}: {proc.stderr.strip()[-1500:]}")
    os.replace(tmp, out)
    return out


def screenshot(html_path: str | os.PathLike, png_path: str | os.PathLike, *, width: int = 1280, height: int = 900,
               chromium: str | None = None, timeout: float = 120) -> Path:
    """A PNG of the top ``width`` x ``height`` pixels of ``html_path`` (what a reader sees first)."""
    chromium = chromium or find_chromium()
    if not chromium:
        raise FileNotFoundError("no chromium / google-chrome executable found (set ACCEFLOW_CHROMIUM)")
    shot = Path(png_path).resolve()
    shot.parent.mkdir(parents=True, exist_ok=True)
    _run(chromium, [f"--window-size={width},{height}", f"--screenshot={shot}", Path(html_path).resolve().as_uri()],
         timeout)
    if not shot.is_file() or shot.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no screenshot of {html_path}")
    return shot
