"""The ``fxlib`` command line.

    fxlib plugins list [--kind builtin|vst3|lv2]     installed effects, per backend
    fxlib plugins show ID [--kind K]                 one effect's parameters, ranges and units
    fxlib chains list                                the preset chains (the paper's and portable ones)
    fxlib chains show NAME                           a preset's learned parameters
    fxlib demo [--out DIR]                           a short tour of the chain API, writing WAVs and JSON
    fxlib train --task amp --profile quick           train, fit the baselines, evaluate, write paper/results
    fxlib evaluate --run runs/amp-quick              evaluate a trained run again
    fxlib process --checkpoint CKPT in.wav out.wav   process a file with a trained model
    fxlib data amp build|download ...                build or download a task's dataset
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

import numpy as np

from . import presets
from .atomic import write_json
from .errors import FxError
from .hosts import KINDS, backend, load_effect
from .hosts.builtin import BUILTINS
from .hosts.vst3 import installed_bundles
from .params import closest
from .tasks import TASKS


def guess_kind(plugin_id: str) -> str:
    """The backend an id most likely belongs to: built-in name, LV2 URI, python path or VST3.

    A name that is neither a VST3 bundle found here nor a built-in, but close to a built-in,
    counts as a misspelt built-in so that the error suggests the right name.
    """
    if plugin_id in BUILTINS:
        return "builtin"
    if "://" in plugin_id or plugin_id.startswith("urn:"):
        return "lv2"
    if ":" in plugin_id and not plugin_id.endswith(".vst3") and not os.path.exists(plugin_id):
        return "python"
    if os.path.exists(plugin_id) or plugin_id.removesuffix(".vst3") in installed_bundles():
        return "vst3"
    return "builtin" if closest(plugin_id, BUILTINS) else "vst3"


def cmd_plugins_list(args: argparse.Namespace) -> int:
    for kind in [args.kind] if args.kind else ["builtin", "vst3", "lv2"]:
        try:
            found = backend(kind).list_plugins()
        except FxError as e:
            print(f"[{kind}] unavailable: {e}")
            continue
        print(f"[{kind}] {len(found)} found")
        for p in found:
            extra = f"  ({p['name']})" if p.get("name") and p["name"] != p["id"] else ""
            print(f"  {p['id']}{extra}")
    return 0


def cmd_plugins_show(args: argparse.Namespace) -> int:
    kind = args.kind or guess_kind(args.id)
    effect = load_effect(kind, args.id, args.sample_rate)
    try:
        print(f"{effect.name}  [{kind}] {args.id}")
        print(f"channels: {' or '.join(map(str, effect.channels))}; reported latency: {effect.latency} samples "
              f"at {effect.sample_rate:g} Hz")
        print(f"{'parameter':28} {'low':>10} {'high':>10} {'default':>10} {'unit':6} scale")
        for p in effect.params.values():
            if p.scale == "choice":
                print(f"{p.name:28} {'choices:':>10} {str(list(p.choices)):>21} {str(p.default):>10} {p.unit:6} choice")
            else:
                print(f"{p.name:28} {p.low:>10.4g} {p.high:>10.4g} {p.default:>10.4g} {p.unit:6} {p.scale}")
    finally:
        effect.close()
    return 0


def cmd_chains_list(args: argparse.Namespace) -> int:
    for name in presets.CHAINS:
        print(f"{name:18} {presets.chain_spec(name).get('description', '')}")
    return 0


def cmd_chains_show(args: argparse.Namespace) -> int:
    with presets.load_chain(args.name) as chain:
        print(chain)
        print(f"latency: {chain.latency} samples")
        print(chain.describe())
    return 0


def demo_signal(sample_rate: float, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A seeded test phrase: plucked harmonic notes with decaying envelopes, float32 (1, T)."""
    rng = np.random.default_rng(seed)
    n = int(sample_rate * seconds)
    t = np.arange(n) / sample_rate
    out = np.zeros(n)
    notes = rng.choice([82.4, 110.0, 146.8, 196.0, 246.9, 329.6], size=8)
    for k, f0 in enumerate(notes):
        start = int(k * n / len(notes))
        tt = t[: n - start]
        tone = sum(np.sin(2 * np.pi * f0 * h * tt) / h for h in range(1, 8))
        out[start:] += 0.3 * tone * np.exp(-4.0 * tt)
    return (out / np.abs(out).max() * 0.5).astype(np.float32)[None]


def rms_dbfs(audio: np.ndarray) -> float:
    """Root-mean-square level of ``audio`` in dBFS."""
    return float(20 * np.log10(np.sqrt(np.mean(np.square(audio))) + 1e-12))


def cmd_demo(args: argparse.Namespace) -> int:
    """Build the amp presets available here, render a phrase at default and random settings."""
    from scipy.io import wavfile

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sr = 22050
    x = demo_signal(sr, seed=args.seed)
    wavfile.write(out / "input.wav", sr, x[0])
    rng = np.random.default_rng(args.seed)
    summary = {"command": " ".join(sys.argv), "sample_rate": sr, "chains": {}}
    for name in ("amp-builtin", "amp-vst3", "amp-lv2"):
        try:
            chain = presets.load_chain(name)
        except FxError as e:
            print(f"{name}: skipped ({e})")
            summary["chains"][name] = {"skipped": str(e)}
            continue
        with chain:
            u = rng.uniform(0.2, 0.8, chain.num_params)
            y_default = chain.process(x, chain.default_unit())
            y_random = chain.process(x, u)
            wavfile.write(out / f"{name}-default.wav", sr, y_default[0])
            wavfile.write(out / f"{name}-random.wav", sr, y_random[0])
            summary["chains"][name] = {
                "learned_parameters": chain.num_params, "latency_samples": chain.latency,
                "rms_dbfs": {"input": rms_dbfs(x), "default": rms_dbfs(y_default), "random": rms_dbfs(y_random)},
                "random_settings": {k: (v if isinstance(v, str) else float(v)) for k, v in chain.to_native(u).items()},
            }
            print(f"{name}: P={chain.num_params}, latency {chain.latency} samples, RMS in {rms_dbfs(x):.1f} dBFS, "
                  f"default {rms_dbfs(y_default):.1f} dBFS, random {rms_dbfs(y_random):.1f} dBFS")
    write_json(out / "demo.json", summary)
    print(f"wrote {out}/demo.json and WAV files")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train import train_and_evaluate

    out = Path(args.out or Path("runs") / f"{args.task}-{args.profile}")
    results = train_and_evaluate(args.task, args.profile, out, data=args.data, chain=args.chain, seed=args.seed,
                                 results=args.results, device=args.device, checkpoint_every=args.checkpoint_every,
                                 progress=not args.no_progress)
    if results is not None:
        print(f"trained {out / 'best.pt'}; results in {args.results}/{results['task']}.md")
        for system, row in results["systems"].items():
            print(f"  {system:18} loss {row['loss']:.4g}  mfcc_cosine {row['mfcc_cosine']:.4g}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_run

    results = evaluate_run(args.run, args.results)
    print(f"wrote {args.results}/{results['task']}.json and .md")
    return 0


def cmd_process(args: argparse.Namespace) -> int:
    from .data.audio import load_audio, save_audio
    from .model import DeepAFx

    model = DeepAFx.from_checkpoint(args.checkpoint)
    audio, _ = load_audio(args.input, int(model.sample_rate), model.channels)
    out, u = model.process(audio)
    save_audio(args.output, out, int(model.sample_rate))
    if args.curves:
        model.write_curves(u, args.curves)
    print(f"wrote {args.output} ({audio.shape[1] / model.sample_rate:.1f} s, {len(u)} parameter vectors)")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    return importlib.import_module(f"fxlib.data.{args.task}").main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fxlib", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    plugins = sub.add_parser("plugins", help="discover installed effects").add_subparsers(dest="action", required=True)
    p = plugins.add_parser("list", help="list installed effects per backend")
    p.add_argument("--kind", choices=[k for k in KINDS if k != "python"])
    p.set_defaults(func=cmd_plugins_list)
    p = plugins.add_parser("show", help="show one effect's parameters")
    p.add_argument("id", help="built-in name, VST3 path or bundle name, LV2 URI")
    p.add_argument("--kind", choices=list(KINDS))
    p.add_argument("--sample-rate", type=float, default=22050.0, help="Hz (default 22050)")
    p.set_defaults(func=cmd_plugins_show)

    chains = sub.add_parser("chains", help="the preset chains").add_subparsers(dest="action", required=True)
    chains.add_parser("list", help="list the presets").set_defaults(func=cmd_chains_list)
    p = chains.add_parser("show", help="show a preset's learned parameters")
    p.add_argument("name", choices=presets.CHAINS)
    p.set_defaults(func=cmd_chains_show)

    p = sub.add_parser("demo", help="render a phrase through the amp presets")
    p.add_argument("--out", default="paper/demo", help="output folder (default paper/demo)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train a task, fit the baselines and evaluate")
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--profile", default="quick", help="smoke, quick or paper (default quick)")
    p.add_argument("--out", help="run folder (default runs/<task>-<profile>); an existing run resumes")
    p.add_argument("--data", help="dataset folder (default data/<task>; built offline if absent)")
    p.add_argument("--chain", help="a preset chain instead of the task's first buildable one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["cpu", "cuda"], help="encoder device (default: CUDA when available)")
    p.add_argument("--results", default="paper/results", help="where the results table goes")
    p.add_argument("--checkpoint-every", type=int, default=25, help="steps between mid-epoch checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a trained run against the baselines")
    p.add_argument("--run", required=True, help="the run folder (holding best.pt)")
    p.add_argument("--results", default="paper/results")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("process", help="process an audio file with a trained model")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--curves", help="also write the parameter curves as CSV")
    p.set_defaults(func=cmd_process)

    p = sub.add_parser("data", help="build or download a task's dataset (see `fxlib data amp --help`)")
    p.add_argument("task", choices=TASKS)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FxError, FileNotFoundError) as e:
        print(f"fxlib: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
