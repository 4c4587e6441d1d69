"""The ``fxlib`` command line (also ``python -m fxlib``).

    fxlib plugins list [--kind builtin|vst3|lv2]     installed effects, per backend
    fxlib plugins show ID [--kind K]                 one effect's parameters, ranges and units
    fxlib chains list                                the preset chains (the paper's and portable ones)
    fxlib chains show NAME                           a preset's learned parameters
    fxlib demo [--out DIR]                           a short tour of the chain API, writing WAVs and JSON
    fxlib train --task amp --profile quick           train, calibrate, evaluate into runs/amp-quick
    fxlib evaluate --run runs/amp-quick              evaluate a trained run again
    fxlib process --run runs/amp-quick in.wav out.wav   process a file with a trained model
    fxlib process --pretrained amp in.wav out.wav        ... with a model shipped with fxlib
    fxlib export --run runs/amp-quick --to DIR          write a run's model to ship (model, record, excerpts)
    fxlib transfer --before RUN --after RUN          two runs scored on the paper's inputs (data before/after)
    fxlib data amp build|download ...                build or download a task's dataset
    fxlib data paper-examples download|list ...      the paper's listening-test stimuli (data/paper-examples)
    fxlib reproduce [--profile quick] [--tasks ...]  the batch reproduction into paper/ (make reproduce)

Every command exits with 0 when it succeeds, 2 when an input is wrong or missing (the message,
on stderr, names it: a plugin, parameter, file, run folder, notebook), and 130 when interrupted.
Relative paths are relative to the working directory.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import shlex
import sys
from pathlib import Path

import numpy as np

from . import paths, presets
from .atomic import write_json
from .data.audio import save_audio
from .errors import FxError
from .hosts import KINDS, backend, load_effect
from .hosts.builtin import BUILTINS
from .hosts.vst3 import installed_bundles
from .params import closest
from .reference_fx import demo_phrase
from .tasks import TASKS, get_task

PAPER_EXAMPLES = "paper-examples"  # `fxlib data paper-examples`: the paper's stimuli, not a task


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


def rms_dbfs(audio: np.ndarray) -> float:
    """Root-mean-square level of ``audio`` in dBFS."""
    return float(20 * np.log10(np.sqrt(np.mean(np.square(audio))) + 1e-12))


def cmd_demo(args: argparse.Namespace) -> int:
    """Build the amp presets available here, render a phrase at default and random settings."""
    out = Path(args.out)
    sr = 22050
    x = demo_phrase(2.0, sr, seed=args.seed)
    save_audio(out / "input.wav", x, sr)
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
            save_audio(out / f"{name}-default.wav", y_default, sr)
            save_audio(out / f"{name}-random.wav", y_random, sr)
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


def _cwd_path(path: str | None) -> Path | None:
    """A path argument as the user meant it: relative to the working directory."""
    return Path(path).resolve() if path else None


def cmd_train(args: argparse.Namespace) -> int:
    from .experiment import run_task

    results = run_task(args.task, args.profile, data=_cwd_path(args.data), chain=args.chain, seed=args.seed,
                       out=_cwd_path(args.out), results=_cwd_path(args.results), device=args.device,
                       checkpoint_every=args.checkpoint_every, progress=not args.no_progress)
    if results is not None:
        print(f"trained {results['run_dir']}; results in {args.results or Path(results['run_dir']) / 'results'}"
              f"/{results['task']}.md")
        for system, row in results["systems"].items():
            print(f"  {system:18} loss {row['loss']:.4g}  mfcc_cosine {row['mfcc_cosine']:.4g}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_run

    results = evaluate_run(_cwd_path(args.run), _cwd_path(args.results))
    print(f"wrote {args.results or Path(args.run) / 'results'}/{results['task']}.json and .md")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .experiment import export

    folder = export(_cwd_path(args.run), _cwd_path(args.to), _cwd_path(args.results) if args.results else None,
                    args.excerpts, args.seconds)
    print(f"wrote {folder}: " + ", ".join(sorted(p.name + "/" * p.is_dir() for p in folder.iterdir())))
    return 0


def cmd_transfer(args: argparse.Namespace) -> int:
    from .comparisons import transfer

    result = transfer(_cwd_path(args.before), _cwd_path(args.after), _cwd_path(args.results))
    for measure, medians in result["medians"].items():
        print(measure, ", ".join(f"{c} {v:.3f}" for c, v in medians.items() if v is not None))
    return 0


def cmd_process(args: argparse.Namespace) -> int:
    from .data.audio import load_audio
    from .model import DeepAFx
    from .rundir import RunDir

    model = DeepAFx.pretrained(args.pretrained) if args.pretrained else RunDir(_cwd_path(args.run)).model()
    audio, _ = load_audio(args.input, int(model.sample_rate), model.channels)
    out, u = model.process(audio)
    save_audio(args.output, out, int(model.sample_rate))
    if args.curves:
        model.write_curves(u, args.curves)
    print(f"wrote {args.output} ({audio.shape[1] / model.sample_rate:.1f} s, {len(u)} parameter vectors)")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    if args.task == PAPER_EXAMPLES:
        from .data import paper_examples

        return paper_examples.main(args.rest, str(paths.resolve(paths.PAPER_EXAMPLES)))
    root = str(paths.resolve(paths.data_dir(args.task, "quick")))
    seconds = get_task(args.task).profile("quick").data_seconds
    return importlib.import_module(f"fxlib.data.{args.task}").main(args.rest, root, seconds)


def cmd_reproduce(args: argparse.Namespace) -> int:
    import time

    from .reproduce import reproduce, report_only

    paper = _cwd_path(args.paper) or paths.resolve(paths.reproduction_dir(args.profile))
    if args.report_only:
        print(f"wrote {report_only(args.tasks, paper)}")
        return 0
    command = shlex.join(["fxlib", "reproduce", *args.argv])
    started = time.monotonic()
    try:
        reproduce(args.profile, args.tasks, args.seed, paper, command)
    except FxError as e:
        raise type(e)(f"{e}\nwhat finished is kept under {paper}/; the report is {paper / paths.REPORT}") from e
    print(f"reproduced {', '.join(args.tasks)} on profile {args.profile} in {(time.monotonic() - started) / 60:.1f} "
          f"min; see {paper / paths.REPORT}")
    return 0


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
    p.add_argument("--out", default=str(paths.RUNS / "demo"), help="output folder (default runs/demo)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train a task, calibrate the baselines and evaluate")
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--profile", default="quick", help="smoke, quick or paper (default quick)")
    p.add_argument("--out", help="run folder (default runs/<task>-<profile>); an existing run resumes")
    p.add_argument("--data", help="dataset folder (default data/<task>; built offline if absent)")
    p.add_argument("--chain", help="a preset chain instead of the task's first buildable one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["cpu", "cuda"], help="encoder device (default: CUDA when available)")
    p.add_argument("--results", help="where the results table goes (default: the run folder's results/)")
    p.add_argument("--checkpoint-every", type=int, default=25, help="steps between mid-epoch checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a trained run against the baselines")
    p.add_argument("--run", required=True, help="the run folder")
    p.add_argument("--results", help="where the results table goes (default: the run folder's results/)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("process", help="process an audio file with a trained model")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="the run folder of the trained model")
    which.add_argument("--pretrained", metavar="NAME", help="a model shipped with fxlib: "
                       "amp, amp-builtin, breath or mastering (fxlib/models/)")
    p.add_argument("input", help="audio file (WAV, FLAC, OGG or MP3)")
    p.add_argument("output", help="audio file to write (WAV or FLAC)")
    p.add_argument("--curves", help="also write the parameter curves as CSV")
    p.set_defaults(func=cmd_process)

    p = sub.add_parser("export", help="write a run's trained model to ship or share: the model, its record and "
                                      "training curve, and test excerpts to play without the data set")
    p.add_argument("--run", required=True, help="the run folder of the trained model")
    p.add_argument("--to", required=True, help="the folder to write (fxlib/models/<name> ships it with fxlib)")
    p.add_argument("--results", help="the run's evaluation table (<task>.json, with its .md beside it): copied, "
                                     "and its test metrics go in the record")
    p.add_argument("--excerpts", type=int, default=2, help="test files to keep excerpts of (default 2)")
    p.add_argument("--seconds", type=float, default=5.0, help="length of each excerpt, s (default 5)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("transfer", help="score two runs of a task (offline data before and after a recalibration) "
                                        "on the paper's inputs, into the results' paper_comparison")
    p.add_argument("--before", required=True, help="the run trained on the earlier data set")
    p.add_argument("--after", required=True, help="the run trained on the current data set")
    p.add_argument("--results", default=str(paths.PAPER / "results"), help="the folder of <task>.json (default paper/results)")
    p.set_defaults(func=cmd_transfer)

    p = sub.add_parser("data", help="build or download a task's dataset (see `fxlib data amp --help`), or fetch "
                                    "the paper's listening-test stimuli (`fxlib data paper-examples --help`)")
    p.add_argument("task", choices=[*TASKS, PAPER_EXAMPLES])
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_data)

    from .reproduce import PROFILES

    p = sub.add_parser("reproduce", help="build the data, run the task notebooks, write paper/ and its report")
    p.add_argument("--profile", default="quick", choices=PROFILES, help="training profile (default quick)")
    p.add_argument("--tasks", nargs="+", default=list(paths.TASK_NOTEBOOKS), choices=list(paths.TASK_NOTEBOOKS),
                   help="tasks to run, in order (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, initialisation and SPSA (default 0)")
    p.add_argument("--paper", help="output folder (default paper; runs/reproduce-smoke for the smoke profile)")
    p.add_argument("--report-only", action="store_true", help="only rewrite REPORT.md from the results files")
    p.set_defaults(func=cmd_reproduce)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv[1:]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        return args.func(args)
    except (FxError, FileNotFoundError) as e:
        print(f"fxlib {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fxlib {args.command}: interrupted; what finished is kept and a rerun goes on", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
