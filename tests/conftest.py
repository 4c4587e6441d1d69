"""Shared test helpers: seeded signals, level measurements, a one-thread torch fixture, and an HTTP
server on 127.0.0.1 (the ``server`` fixture) with archive and WAV makers for the download tests.

The server (a thread in this process) serves in-memory files; it can honour or ignore ``Range``
requests and cut a response halfway to simulate a dropped connection.
"""
from __future__ import annotations

import io
import re
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

SR = 22050


def sine(freq: float = 1000.0, dbfs: float = -6.0, seconds: float = 1.0, sr: int = SR,
         channels: int = 1) -> np.ndarray:
    """A steady sine of peak level ``dbfs``, float32 ``(channels, samples)``."""
    t = np.arange(int(seconds * sr)) / sr
    x = 10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t)
    return np.repeat(x[None].astype(np.float32), channels, axis=0)


def noise(seconds: float = 1.0, sr: int = SR, channels: int = 1, dbfs: float = -20.0,
          seed: int = 0) -> np.ndarray:
    """Seeded white noise of RMS level ``dbfs``, float32 ``(channels, samples)``; channels differ."""
    x = np.random.default_rng(seed).standard_normal((channels, int(seconds * sr)))
    return (10 ** (dbfs / 20) * x).astype(np.float32)


def impulse(n: int = 4096, at: int = 0, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    x = np.zeros((channels, n), np.float32)
    x[:, at] = amp
    return x


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)) + 1e-12))


def tone_db(x: np.ndarray, freq: float, sr: int = SR) -> float:
    """Level (dB) of the FFT bin nearest ``freq`` of a mono signal, Hann-windowed."""
    x = np.asarray(x, np.float64).reshape(-1)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(round(freq * len(x) / sr))
    return float(20 * np.log10(spec[k - 1:k + 2].max() + 1e-12))


def band_db(x: np.ndarray, lo: float, hi: float, sr: int = SR) -> float:
    """Energy (dB) of a mono signal between ``lo`` and ``hi`` Hz."""
    x = np.asarray(x, np.float64).reshape(-1)
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return float(10 * np.log10(spec[(f >= lo) & (f < hi)].sum() + 1e-20))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small tensors: one torch thread is faster, and steadier on a shared machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- a local HTTP server for download tests ----------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        state = self.server.state
        path = self.path.split("?")[0]
        state["requests"].append((path, self.headers.get("Range")))
        if path == "/slow":
            time.sleep(1.0)
        if path not in state["files"]:
            self.send_error(404)
            return
        data, start = state["files"][path], 0
        asked = self.headers.get("Range")
        if asked and state["ranges"]:
            start = int(re.match(r"bytes=(\d+)-", asked).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if path in state["cut"]:  # drop the connection halfway, once
            state["cut"].discard(path)
            self.wfile.write(body[:len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.state = {"files": {}, "requests": [], "ranges": True, "cut": set()}
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def make_tar(members: dict[str, bytes], symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tf.addfile(info)
    return buf.getvalue()


def wav_bytes(x: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    wavfile.write(buf, sr, (x * 32767).astype(np.int16))
    return buf.getvalue()

