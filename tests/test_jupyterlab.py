"""The tour notebook in a real JupyterLab, driven by headless Chromium: the widgets must render.

Starts ``jupyter lab`` on 127.0.0.1 (a free port, a random token) over a temporary copy of
``notebooks/00_tour.ipynb``, opens it in Chromium through chromedriver, runs every cell with
JupyterLab's own command and waits for the widgets; saves a screenshot to the test's tmp_path.
Skipped, saying why, when Chromium, chromedriver or selenium is missing.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TOUR_CHAIN = "amp-builtin"  # a built-in chain: renders everywhere


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tour_copy(folder: Path) -> Path:
    """The tour with its parameters set for a folder outside the checkout (no A/B run, a short clip)."""
    nb = nbformat.read(ROOT / "notebooks" / "00_tour.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source += f'\nchain = "{TOUR_CHAIN}"\nclip_seconds = 2.0\nrun = ""\nerror_trials = 2\n'
    path = folder / "00_tour.ipynb"
    nbformat.write(nb, path)
    return path


def _wait_for_server(url: str, process: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with status {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                json.load(response)
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer {url} within {timeout} s")


@pytest.fixture
def lab(tmp_path):
    """A running JupyterLab over a folder holding the tour copy: ``(base url, token, folder)``."""
    pytest.importorskip("jupyterlab")
    pytest.importorskip("ipywidgets")
    folder = tmp_path / "lab"
    folder.mkdir()
    _tour_copy(folder)
    port, token = _free_port(), secrets.token_hex(16)
    runtime = tmp_path / "runtime"
    env = {"JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    log_path = tmp_path / "lab.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip", "127.0.0.1", f"--port={port}",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={folder}", "--LabApp.expose_app_in_browser=True",
         f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"] + (["--allow-root"] if os.geteuid() == 0 else []),
        cwd=folder, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})
    try:
        _wait_for_server(f"http://127.0.0.1:{port}/api/status?token={token}", process, log_path)
        yield f"http://127.0.0.1:{port}", token, folder
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def browser():
    """Headless Chromium through chromedriver."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--window-size=1400,1800", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


KERNEL_STATUS = """
const app = window.jupyterapp;
const widget = app && app.shell.currentWidget;
const session = widget && widget.sessionContext && widget.sessionContext.session;
return session && session.kernel ? session.kernel.status : null;
"""


def _wait(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"gave up after {timeout} s waiting for {what}")


def test_tour_widgets_render_in_jupyterlab(lab, browser, tmp_path):
    base, token, _ = lab
    browser.get(f"{base}/lab/tree/00_tour.ipynb?token={token}")
    _wait(lambda: browser.execute_script(KERNEL_STATUS) == "idle", 180, "the tour's kernel to start")
    browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")
    sliders = _wait(lambda: browser.find_elements("css selector", ".widget-slider"), 180,
                    "the chain explorer's sliders to render")
    # every cell has run when the kernel is idle again and the last cell, the A/B section, plays the shipped model
    _wait(lambda: browser.execute_script(KERNEL_STATUS) == "idle"
          and "shipped model 'amp" in browser.find_element("css selector", ".jp-Notebook").text
          and browser.find_elements("css selector", ".jp-Notebook audio"), 240,
          "all cells to finish and the shipped amp model's players to render")
    widgets = browser.find_elements("css selector", ".jupyter-widgets")
    errors = browser.find_elements("css selector", ".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']")
    screenshot = tmp_path / "tour.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 20_000, "the screenshot is nearly empty"
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(sliders) >= 3, f"only {len(sliders)} sliders rendered"
    assert widgets, "no .jupyter-widgets element rendered"
    tracebacks = [e.text for e in errors if "Traceback" in e.text or "Error" in e.text]
    assert not tracebacks, f"the tour printed errors: {tracebacks[:2]}"
