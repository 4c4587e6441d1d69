"""Hosting speed: how fast fxlib runs each backend and each paper chain, and what fxlib adds.

Usage (from the repository root)::

    python benchmarks/hosting.py            # full run, about half a minute on 2 cores
    python benchmarks/hosting.py --quick    # a few seconds, fewer repeats and shorter streams

Writes ``benchmarks/results/hosting.json`` (atomically: a temporary file renamed into place).

Measured, for one effect per backend and for every preset chain in :data:`fxlib.presets.CHAINS`:

* ``buffer_1s``: speed as a multiple of real time processing 1 s buffers, one call each,
  continuing the stream (``Effect.process`` / ``FxChain.stream``); median of repeats.
* ``stream_1024``: the same with 1024-sample buffers, many calls in a row (one repeat = the
  whole stream); median of repeats.
* ``overhead_us_per_call``: fxlib's wall time per call minus the plugin's own time per call,
  in microseconds (the median over repeats of the paired differences; repeats of the raw and
  the fxlib call alternate). The plugin's own time is measured by calling the raw underlying
  object on input already in the shape the plugin takes:

  - builtin: the pedalboard plugin's ``process(audio, sample_rate, reset=False)``;
  - vst3: the pedalboard ``ExternalPlugin.process(audio, sample_rate, reset=False)``;
  - lv2: the plugin's C ``run(handle, frames)`` through ctypes, once per ``max_block`` frames,
    on the already connected port buffers (no copying in or out: that copying is fxlib's);
  - python: the user's callable itself, ``fn(audio, sample_rate, **values)``.

  For a chain, the raw time is the sum of its stages' raw calls (for a dual-mono stage both
  instances on pre-split channels, for a mono-to-stereo stage one call on a pre-made stereo
  input), so channel adaptation counts as fxlib overhead.

The input is seeded white noise at -20 dBFS. Timings are wall-clock and depend on the machine:
compare numbers from one run only.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# fxlib from this checkout, fx_user (the user-style callables) from tests/, raw from benchmarks/
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from report import Run  # noqa: E402 (benchmarks/report.py)
from fxlib.chain import FxChain  # noqa: E402
from fxlib.hosts import Effect, load_effect  # noqa: E402

from raw import raw_call, raw_stage  # noqa: E402  (benchmarks/raw.py)

SR = 22050
BLOCK = 1024
RESULTS = ROOT / "benchmarks" / "results" / "hosting.json"
GAIN_PARAMS = [{"name": "gain_db", "low": -24.0, "high": 24.0, "default": -6.0, "unit": "dB"}]

BACKENDS = [  # (backend, plugin id, constructor options, values to set)
    ("builtin", "Compressor", {}, {"threshold_db": -30.0, "ratio": 4.0}),
    ("vst3", "ZamComp", {}, {"threshold_db": -30.0, "ratio": 4.0}),
    ("lv2", "http://calf.sourceforge.net/plugins/MultibandCompressor", {}, {}),
    ("python", "fx_user:gain", {"params": GAIN_PARAMS}, {"gain_db": -6.0}),
]


# -- timing -----------------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(fx: Callable[[], Any], raw: Callable[[], Any] | None, repeats: int) -> tuple:
    """Median wall times of ``fx()`` and ``raw()`` and the median of their paired differences.

    Repeats alternate fx and raw (after one warm-up each), so slow drifts of the machine's
    speed hit both; the overhead is the median of the per-repeat differences.
    """
    fx()
    if raw is not None:
        raw()
    fx_times, raw_times = [], []
    for _ in range(repeats):
        fx_times.append(timed(fx))
        if raw is not None:
            raw_times.append(timed(raw))
    if raw is None:
        return statistics.median(fx_times), None, None
    diff = statistics.median(f - r for f, r in zip(fx_times, raw_times))
    return statistics.median(fx_times), statistics.median(raw_times), diff


def summary(fx_s: float, raw_s: float | None, diff_s: float | None, calls: int, audio_s: float) -> dict:
    out = {"calls": calls, "audio_seconds": round(audio_s, 4), "fxlib_seconds": fx_s,
           "fxlib_x_realtime": round(audio_s / fx_s, 2), "fxlib_us_per_call": round(1e6 * fx_s / calls, 2)}
    if raw_s is not None:
        out.update({"raw_seconds": raw_s, "raw_x_realtime": round(audio_s / raw_s, 2),
                    "raw_us_per_call": round(1e6 * raw_s / calls, 2),
                    "overhead_us_per_call": round(1e6 * diff_s / calls, 2),
                    "overhead_percent": round(100 * diff_s / raw_s, 1)})
    return out


def noise(channels: int, samples: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal((channels, samples))).astype(np.float32)


def bench_effect(effect: Effect, args: argparse.Namespace) -> dict:
    channels = 1 if 1 in effect.channels else effect.channels[0]
    sr = int(effect.sample_rate)
    second = noise(channels, sr)
    raw = raw_call(effect)
    fx_s, raw_s, diff = compare(lambda: effect.process(second), lambda: raw(second), args.repeats)
    result = {"channels": channels, "latency": effect.latency, "buffer_1s": summary(fx_s, raw_s, diff, 1, 1.0)}
    calls = int(args.stream_seconds * sr) // BLOCK
    blocks = [np.ascontiguousarray(b) for b in np.split(noise(channels, calls * BLOCK, seed=1), calls, axis=1)]
    fx_s, raw_s, diff = compare(lambda: [effect.process(b) for b in blocks], lambda: [raw(b) for b in blocks],
                                args.repeats)
    result["stream_1024"] = summary(fx_s, raw_s, diff, calls, calls * BLOCK / sr)
    return result


def bench_chain(chain: FxChain, args: argparse.Namespace) -> dict:
    sr = int(chain.sample_rate)
    second = noise(chain.channels, sr)

    def raw_chain(audio: np.ndarray) -> Callable[[], Any]:
        stages = [raw_stage(stage, audio) for stage in chain.stages]
        return lambda: [s() for s in stages]

    result: dict[str, Any] = {"channels": chain.channels, "num_params": chain.num_params, "latency": chain.latency,
                              "stages": [f"{s.name} ({s.spec['kind']}: {s.spec['id']}, {s.mode})" for s in chain.stages]}
    process_s, _, _ = compare(lambda: chain.process(second), None, args.repeats)
    result["process_1s"] = {"fxlib_seconds": process_s, "fxlib_x_realtime": round(1.0 / process_s, 2),
                            "note": "FxChain.process: reset, latency flush and alignment included"}
    fx_s, raw_s, diff = compare(lambda: chain.stream(second), raw_chain(second), args.repeats)
    result["buffer_1s"] = summary(fx_s, raw_s, diff, 1, 1.0)
    calls = int(args.stream_seconds * sr) // BLOCK
    blocks = [np.ascontiguousarray(b) for b in np.split(noise(chain.channels, calls * BLOCK, seed=1), calls, axis=1)]
    raws = [raw_chain(b) for b in blocks]
    fx_s, raw_s, diff = compare(lambda: [chain.stream(b) for b in blocks], lambda: [r() for r in raws], args.repeats)
    result["stream_1024"] = summary(fx_s, raw_s, diff, calls, calls * BLOCK / sr)
    return result


# -- the run ----------------------------------------------------------------------------------
def skipped(e: BaseException) -> dict:
    return {"skipped": f"{type(e).__name__}: {e}".strip()}


def run(args: argparse.Namespace) -> dict:
    """The figures: ``raw_calls`` (what each backend's raw call is), ``backends`` and ``chains``."""
    report: dict[str, Any] = {
        "raw_calls": {"builtin": "pedalboard plugin .process(audio, sr, reset=False)",
                      "vst3": "pedalboard ExternalPlugin .process(audio, sr, reset=False)",
                      "lv2": "the plugin's C run(handle, frames) via ctypes per max_block frames, buffers already "
                             "connected (no copies)",
                      "python": "the user's callable fn(audio, sr, **values)",
                      "chain": "sum of the stages' raw calls on inputs pre-shaped for each plugin"},
        "backends": [], "chains": [],
    }
    for kind, plugin_id, options, values in BACKENDS:
        entry: dict[str, Any] = {"backend": kind, "plugin": plugin_id}
        try:
            effect = load_effect(kind, plugin_id, SR, **options)
            effect.set(values)
            entry.update({"name": effect.name, "values": values, **bench_effect(effect, args)})
            effect.close()
        except Exception as e:  # a missing plugin or backend is reported, not fatal
            entry.update(skipped(e))
            if args.verbose:
                traceback.print_exc()
        report["backends"].append(entry)
        print_entry(kind, entry)
    try:
        from fxlib import presets
    except ImportError as e:
        report["chains_note"] = f"fxlib.presets is not available ({e}); chains skipped"
        print(report["chains_note"])
    else:
        for name in presets.CHAINS:
            entry = {"chain": name}
            try:
                spec = presets.chain_spec(name)
                entry["sample_rate"] = spec.get("sample_rate", SR)
                with FxChain.from_spec(spec) as chain:
                    entry.update(bench_chain(chain, args))
            except Exception as e:
                entry.update(skipped(e))
                if args.verbose:
                    traceback.print_exc()
            report["chains"].append(entry)
            print_entry(name, entry)
    return report


def print_entry(label: str, entry: dict) -> None:
    if "skipped" in entry:
        print(f"{label:18} skipped: {entry['skipped']}")
        return
    one, blk = entry["buffer_1s"], entry["stream_1024"]
    print(f"{label:18} 1 s: {one['fxlib_x_realtime']:>9.1f}x RT (raw {one.get('raw_x_realtime', 0):>9.1f}x, "
          f"overhead {one.get('overhead_us_per_call', 0):>8.1f} us/call)   1024: {blk['fxlib_x_realtime']:>8.1f}x RT "
          f"(raw {blk.get('raw_x_realtime', 0):>8.1f}x, overhead {blk.get('overhead_us_per_call', 0):>6.1f} us/call)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few repeats and short streams (a smoke run)")
    parser.add_argument("--repeats", type=int, help="timed repeats per measurement (default 15, quick 3)")
    parser.add_argument("--stream-seconds", type=float,
                        help="seconds of audio streamed in 1024-sample buffers per repeat (default 10, quick 2)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"output JSON (default {RESULTS.relative_to(ROOT)})")
    parser.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of skipped entries")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 15)
    args.stream_seconds = args.stream_seconds or (2.0 if args.quick else 10.0)
    if args.repeats < 1 or args.stream_seconds * SR < BLOCK:
        parser.error("--repeats must be >= 1 and --stream-seconds long enough for one 1024-sample buffer")
    bench = Run("hosting")
    bench.write(args.out, {"quick": args.quick, "repeats": args.repeats, "stream_seconds": args.stream_seconds,
                           "block": BLOCK, "sample_rate": SR, "signal": "white noise, -20 dBFS, seeded"}, **run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
