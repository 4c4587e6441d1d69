"""Benchmark: the encoder's backbones on the CPU, and what makes them cheaper.

For each backbone (small CNN, MobileNetV2, Inception) on the paper's 40960-sample context
(a 128 x 161 log-mel image):

- ``train_step_s``: forward and backward of a batch (the quick profiles' 16), as in training,
  eager and with channels-last tensors (``channels_last``);
- ``inference_ms_per_hop``: the encoder without its front end (``Encoder.from_logmel``) on a
  batch of hops in eval mode, as whole-file inference runs it, for each variant: ``eager``;
  ``channels_last``; ``inference_copy`` (``Encoder.for_inference``, what ``DeepAFx.predict``
  runs: every BatchNorm of a conv block folded into its convolution, and channels-last); ``jit_frozen`` (TorchScript frozen and
  ``optimize_for_inference``: folds BatchNorm, uses oneDNN layouts); ``compile``
  (``torch.compile``, for the backbones named by ``--compile``: its compile time is reported apart);
- ``max_abs_diff``: each variant's largest output difference from eager, on the same inputs:
  what it costs in accuracy (the outputs are parameters in (0, 1));
- the front end: ``logmel_ms_per_context`` (one context at a time, as training sees it) and
  ``logmel_sliding_ms_per_hop`` (a file's hops, frames shared: ``LogMel.sliding``).

Training keeps the eager encoder: any variant changes float rounding, and with it a seeded
run's numbers (channels-last training is the next candidate, with the next regeneration of
``paper/``). Timings are the fastest of the repeats, CPU wall clock, torch's default threads.
Writes ``benchmarks/results/encoder.json`` with the load average.

Usage::

    python benchmarks/encoder.py                     # every backbone, no torch.compile
    python benchmarks/encoder.py --compile small      # and torch.compile for the small CNN
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # fxlib from this checkout

from report import Run  # noqa: E402 (benchmarks/report.py)
from fxlib.encoder import BACKBONES, Encoder  # noqa: E402

CONTEXT, SR, P = 40960, 22050, 21


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbones", nargs="+", default=sorted(BACKBONES), choices=sorted(BACKBONES))
    p.add_argument("--batch", type=int, default=16, help="training batch (the quick profiles')")
    p.add_argument("--hops", type=int, default=4, help="hops per inference batch (DeepAFx.predict's default)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (the fastest is kept)")
    p.add_argument("--compile", nargs="*", default=[], choices=sorted(BACKBONES), metavar="BACKBONE",
                   help="backbones also timed with torch.compile (minutes of compiling each)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "encoder.json")
    return p.parse_args(argv)


def fastest(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def inference_variants(encoder: Encoder, mel: torch.Tensor, compile_too: bool) -> dict[str, tuple]:
    """``{variant: (run, compile seconds or None)}``: callables mapping ``mel`` to the parameters."""
    variants: dict[str, tuple] = {"eager": (lambda: encoder.from_logmel(mel), None)}
    last = copy.deepcopy(encoder).to(memory_format=torch.channels_last)
    mel_last = mel.contiguous(memory_format=torch.channels_last)
    variants["channels_last"] = (lambda: last.from_logmel(mel_last), None)
    inference = encoder.for_inference()
    variants["inference_copy"] = (lambda: inference.from_logmel(mel_last), None)

    class FromLogMel(nn.Module):
        def __init__(self, inner: Encoder) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner.from_logmel(x)

    start = time.perf_counter()
    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(FromLogMel(encoder).eval(), mel)))
    variants["jit_frozen"] = (lambda: frozen(mel), time.perf_counter() - start)
    if compile_too:
        compiled = torch.compile(encoder.from_logmel)
        start = time.perf_counter()
        compiled(mel)
        variants["compile"] = (lambda: compiled(mel), time.perf_counter() - start)
    return variants


def bench_backbone(name: str, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    encoder = Encoder(P, name, sample_rate=SR)
    gen = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(args.batch, 1, CONTEXT, generator=gen)
    row: dict[str, Any] = {"parameters": sum(p.numel() for p in encoder.parameters())}

    def train_step(model: Encoder, x: torch.Tensor) -> Callable[[], None]:
        return lambda: model(x).square().mean().backward()
    row["train_step_s"] = {"eager": round(fastest(train_step(encoder, audio), args.repeats), 4)}
    last = copy.deepcopy(encoder).to(memory_format=torch.channels_last)
    row["train_step_s"]["channels_last"] = round(fastest(train_step(last, audio), args.repeats), 4)

    encoder.eval()
    file = 0.1 * torch.randn(1, CONTEXT + (args.hops - 1) * 1024, generator=gen)
    with torch.no_grad():
        contexts = torch.stack([file[:, i * 1024:i * 1024 + CONTEXT] for i in range(args.hops)])
        mel = encoder.logmel(contexts)
        row["logmel_ms_per_context"] = round(1e3 * fastest(lambda: encoder.logmel(contexts), args.repeats)
                                             / args.hops, 3)
        sliding = lambda: list(encoder.logmel.sliding(file, 0, 1024, CONTEXT, args.hops, args.hops))  # noqa: E731
        row["logmel_sliding_ms_per_hop"] = round(1e3 * fastest(sliding, args.repeats) / args.hops, 3)
        reference = encoder.from_logmel(mel)
        row["inference_ms_per_hop"], row["max_abs_diff"], row["compile_s"] = {}, {}, {}
        for variant, (run, compile_s) in inference_variants(encoder, mel, name in args.compile).items():
            row["inference_ms_per_hop"][variant] = round(1e3 * fastest(run, args.repeats) / args.hops, 3)
            row["max_abs_diff"][variant] = float((run() - reference).abs().max())
            if compile_s is not None:
                row["compile_s"][variant] = round(compile_s, 1)
    print(f"{name:12} {row}", flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    run = Run("encoder")
    results = {name: bench_backbone(name, args) for name in args.backbones}
    run.write(args.out, {"context": CONTEXT, "batch": args.batch, "hops": args.hops, "repeats": args.repeats,
                         "num_params": P}, backbones=results)


if __name__ == "__main__":
    main()
