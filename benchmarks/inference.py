"""Benchmark: whole-file inference (``DeepAFx.process``, as ``fxlib process`` runs it) as a multiple of real time.

For each task, a model sized as the task's quick profile builds (encoder, pooling, curves,
context, frame, inference mode: what :class:`fxlib.train.Trainer` builds, untrained: speed
does not depend on the weights) processes a seeded noise file at -20 dBFS; the wall time of
``process`` (per-hop parameters, then the chain streaming through the file) and of its two
parts (``predict``, the encoder; ``render``, the chain) are timed, the fastest of the repeats.
``x_realtime = audio seconds / process seconds``. Torch uses its default threads (the cores).

The bounds beside them, on the same machine and run: ``chain_raw_x_realtime``, the chain's
plugins alone streaming the file on one thread (``benchmarks/raw.py``), the most any
inference can reach, since a stream's hops render one after another; and
``encoder_per_hop_ms``, the encoder's own time per hop.

The arithmetic floor: ``encoder_macs_per_hop`` counts the multiply-adds of the encoder's
convolutions and linear layers on one hop's context (forward hooks; the log-mel, BatchNorm,
pooling and activations left out), and ``matmul_gmacs`` is the rate of a 2048 x 2048 float32
matrix product (torch's default threads, the fastest repeat), a large dense product being about
the fastest torch multiplies and adds on a CPU; convolutions with few channels run slower.
``encoder_floor_s = hops * encoder_macs_per_hop / matmul rate`` is then about the least an exact
per-hop encoder can take, and ``x_realtime_ceiling = audio seconds / (encoder_floor_s +
chain_raw_s / cores)`` about the most an exact inference can reach, even with the plugins'
renders packed perfectly beside the encoder on the cores.

Before and after, in the same run: ``plain_predict_s`` is ``predict`` as it was before the
encoder's inference copy (:meth:`fxlib.encoder.Encoder.for_inference`; BatchNorm apart,
contiguous memory, batches of 32 hops), and ``plain_x_realtime`` the whole process with it
(``process_s - predict_s + plain_predict_s``).

Writes ``benchmarks/results/inference.json`` with the load average.

Usage::

    python benchmarks/inference.py                  # amp (amp-lv2) and mastering (mastering-lv2)
    python benchmarks/inference.py --seconds 10 --repeats 1
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # fxlib from this checkout; raw

from fxlib import FxChain  # noqa: E402
from report import Run  # noqa: E402 (benchmarks/report.py)
from fxlib.framing import context_lead  # noqa: E402
from fxlib.model import DeepAFx, curve_ranges  # noqa: E402
from fxlib.presets import chain_spec  # noqa: E402
from fxlib.tasks import get_task  # noqa: E402

from raw import RawChain  # noqa: E402

MODELS = {"amp": "amp-lv2", "mastering": "mastering-lv2"}
TARGETS = {"amp": 100.0, "mastering": 30.0}
"""x real time targets on 2 cores (issue 22)."""


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(MODELS), help="tasks (their quick profile and LV2 chain)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the file processed")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (the fastest is kept)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "inference.json")
    return p.parse_args(argv)


def quick_model(task_name: str, chain: str) -> DeepAFx:
    """An untrained model as :class:`fxlib.train.Trainer` builds it for the task's quick profile."""
    task = get_task(task_name)
    profile = task.profile("quick")
    spec = chain_spec(chain)
    with FxChain.from_spec(spec) as built:
        curves = curve_ranges(built.names, profile.curves)
    encoder = {"backbone": profile.backbone, "pooling": profile.pooling, "curves": curves,
               "sample_rate": task.sample_rate}
    torch.manual_seed(0)
    return DeepAFx(spec, encoder, profile.context, profile.frame, profile.inference).eval()


def fastest(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def raw_stream_seconds(spec: dict, audio: np.ndarray, frame: int) -> float:
    """Seconds for the chain's plugins alone to stream ``audio`` hop by hop on one thread."""
    with FxChain.from_spec(spec) as chain:
        raw = RawChain(chain)
        blocks = [np.ascontiguousarray(audio[:, i:i + frame]) for i in range(0, audio.shape[1], frame)]
        start = time.perf_counter()
        for block in blocks:
            raw.stream(block)
        return time.perf_counter() - start


def encoder_macs(model: DeepAFx) -> int:
    """Multiply-adds of the encoder's convolutions and linear layers on one context ``(1, C, context)``."""
    counts: list[int] = []

    def count(module: torch.nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        per_output = module.in_features if isinstance(module, torch.nn.Linear) else \
            module.in_channels // module.groups * int(np.prod(module.kernel_size))
        counts.append(output.numel() * per_output)

    layers = [m for m in model.encoder.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    hooks = [m.register_forward_hook(count) for m in layers]
    try:
        with torch.no_grad():
            model.encoder(torch.zeros(1, model.channels, model.context))
    finally:
        for hook in hooks:
            hook.remove()
    return sum(counts)


def matmul_rate(repeats: int, size: int = 2048) -> float:
    """Multiply-adds per second of torch's float32 ``size x size`` matrix product (the fastest repeat)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    return size ** 3 / fastest(lambda: a @ b, max(repeats, 5))


def plain_predict(model: DeepAFx, audio: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """``model.predict`` as it was before the inference copy: the log-mel computed once per file, the
    encoder as trained (BatchNorm apart, contiguous memory) on batches of 32 hops. The "before"."""
    n = -(-audio.shape[1] // model.frame)
    with torch.no_grad():
        mels = model.encoder.logmel.sliding(torch.from_numpy(audio), -context_lead(model.context, model.frame),
                                            model.frame, model.context, n, batch_size)
        return torch.cat([model.encoder.from_logmel(mel) for mel in mels]).double().numpy()


def bench_task(task: str, args: argparse.Namespace) -> dict:
    try:
        model = quick_model(task, MODELS[task])
    except Exception as exc:  # a missing plugin: record why and go on
        return {"status": "skipped", "reason": f"{type(exc).__name__}: {exc}"}
    sr = int(model.sample_rate)
    samples = int(args.seconds * sr)
    audio = (0.1 * np.random.default_rng(0).standard_normal((model.channels, samples))).astype(np.float32)
    hops = -(-audio.shape[1] // model.frame)
    u = model.predict(audio)  # warm-up
    process_s = fastest(lambda: model.process(audio), args.repeats)
    predict_s = fastest(lambda: model.predict(audio), args.repeats)
    plain_s = fastest(lambda: plain_predict(model, audio), args.repeats)
    render_s = fastest(lambda: model.render(audio, u), args.repeats)
    raw_s = min(raw_stream_seconds(model.chain_spec, audio, model.frame) for _ in range(args.repeats))
    seconds = audio.shape[1] / sr
    macs, rate, cores = encoder_macs(model), matmul_rate(args.repeats), len(os.sched_getaffinity(0))
    floor_s = hops * macs / rate
    row = {"status": "ok", "chain": MODELS[task], "profile": "quick", "inference": model.inference,
           "context": model.context, "frame": model.frame, "backbone": model.encoder_config["backbone"],
           "pooling": model.encoder_config["pooling"], "audio_seconds": round(seconds, 3), "hops": hops,
           "process_s": round(process_s, 4), "x_realtime": round(seconds / process_s, 2),
           "predict_s": round(predict_s, 4), "predict_x_realtime": round(seconds / predict_s, 2),
           "encoder_per_hop_ms": round(1e3 * predict_s / hops, 3),
           "plain_predict_s": round(plain_s, 4), "plain_predict_x_realtime": round(seconds / plain_s, 2),
           "plain_x_realtime": round(seconds / (process_s - predict_s + plain_s), 2),
           "render_s": round(render_s, 4), "render_x_realtime": round(seconds / render_s, 2),
           "chain_raw_s": round(raw_s, 4), "chain_raw_x_realtime": round(seconds / raw_s, 2),
           "encoder_macs_per_hop": macs, "matmul_gmacs": round(rate / 1e9, 1),
           "encoder_floor_s": round(floor_s, 4), "x_realtime_ceiling": round(seconds / (floor_s + raw_s / cores), 2),
           "target_x_realtime": TARGETS[task]}
    print(f"{task:10} " + " ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    run = Run("inference")
    results = {task: bench_task(task, args) for task in args.tasks}
    run.write(args.out, {"seconds": args.seconds, "repeats": args.repeats, "signal": "white noise, -20 dBFS, seeded",
                         "model": "untrained, built as fxlib.train.Trainer builds the task's quick profile"},
              tasks=results)


if __name__ == "__main__":
    main()
