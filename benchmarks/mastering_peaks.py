"""Measurement: where the mastering systems' true-peak error comes from, and its floor.

Issue 19 asks the mastering model to beat matchering on true-peak error. Two facts bound what
the paper's chain can do there, and this script measures both on the test split:

- the offline targets' ceiling (the maximiser's sample-peak ceiling) is drawn per song in
  ``fxlib.data.mastering.CEILING_DBFS``, independently of the mix, so nothing in the input
  tells a system where the target's peak is;
- the released chain ends in LSP's limiter with its gain boost on (every control but the
  threshold at the plugin's default, as released), which lifts the output by as much as the
  threshold lowers it: whenever the limiter limits, the output's sample peak is 0 dBFS, and
  its true peak (4x oversampled, :func:`fxlib.metrics.true_peak_dbtp`) at least that.

Per test song: the target's true peak, and for each system its output's sample peak, true
peak and true-peak error. Per system: the mean error, how many outputs sit at 0 dBFS sample
peak, and the mean inter-sample overshoot (true peak minus sample peak). Beside them, two
reference errors: a system whose true peak is 0 dBTP on every song (the floor of a limiting
output of this chain), and the best constant true peak that the training targets suggest
(their median). With ``--paper-examples``, the same for the paper's own mastering stimuli
(``fxlib data paper-examples``; MP3 at 44.1 kHz, aligned by
:func:`fxlib.data.paper_examples.load_example`): the paper's DeepAFx and the online service
against their targets. Timing plays no part.

The model and its best fixed vector are the shipped ``mastering`` model (``fxlib/models/``,
seed 0 of the quick profile) unless ``--run`` names a run folder; the data must be the set
that model was trained on (``fxlib data mastering build --seed 0`` for the shipped one).
Writes ``benchmarks/results/mastering_peaks.json``.

Usage::

    python benchmarks/mastering_peaks.py --data data/mastering
    python benchmarks/mastering_peaks.py --data data/mastering --run runs/mastering-quick
    python benchmarks/mastering_peaks.py --data data/mastering --paper-examples ../shared/paper-listening-test
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # fxlib from this checkout

from fxlib.data import paper_examples  # noqa: E402
from fxlib.data.paired import PairedDataset  # noqa: E402
from fxlib.metrics import true_peak_dbtp  # noqa: E402
from fxlib.model import MODELS_DIR, DeepAFx  # noqa: E402
from fxlib.rundir import FixedSetting, RunDir, standard_systems  # noqa: E402
from fxlib.tasks import get_task  # noqa: E402

from report import Run  # noqa: E402

#: A sample peak within this of 0 dBFS counts as limited (the boost puts it at 0 dBFS).
AT_FULL_SCALE_DB = 0.01
SYSTEMS = ("deepafx", "deepafx-hop", "chain-best-fixed", "matchering")


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="the mastering data set the model was trained on")
    p.add_argument("--run", type=Path, help="a mastering run folder (default: the shipped mastering model)")
    p.add_argument("--paper-examples", type=Path, help="the paper's listening-test stimuli (optional)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mastering_peaks.json")
    return p.parse_args(argv)


def sample_peak_dbfs(audio: np.ndarray) -> float:
    """The largest absolute sample value of ``audio`` ``(C, T)``, in dBFS (-inf when silent)."""
    peak = float(np.max(np.abs(audio)))
    return 20 * np.log10(peak) if peak > 0 else -np.inf


def peaks(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """``{"sample_peak_dbfs", "true_peak_dbtp"}`` of ``audio`` ``(C, T)``, rounded to 3 decimals."""
    return {"sample_peak_dbfs": round(sample_peak_dbfs(audio), 3),
            "true_peak_dbtp": round(true_peak_dbtp(audio, sample_rate), 3)}


def summarise(rows: list[dict[str, float]], targets: list[float]) -> dict[str, float | int]:
    """A system's mean true-peak error over ``rows`` (its :func:`peaks` per song) against ``targets`` (dBTP)."""
    sp = np.array([r["sample_peak_dbfs"] for r in rows])
    tp = np.array([r["true_peak_dbtp"] for r in rows])
    return {"true_peak_error_db": round(float(np.mean(np.abs(tp - np.asarray(targets)))), 3),
            "outputs_at_0_dbfs": int(np.sum(sp > -AT_FULL_SCALE_DB)),
            "mean_sample_peak_dbfs": round(float(sp.mean()), 3),
            "mean_overshoot_db": round(float(np.mean(tp - sp)), 3)}


def paper_stimuli(folder: Path) -> dict:
    """Per mastering example of the paper, every condition's :func:`peaks`; per condition, :func:`summarise`."""
    found = [e for e in paper_examples.examples(folder, ["mastering"]) if e.complete]
    if not found:
        raise SystemExit(f"{folder}: no complete mastering example of the paper (fetch them with "
                         "`fxlib data paper-examples`)")
    songs = {}
    for example in found:
        loaded = paper_examples.load_example(example)
        songs[str(example.id)] = {c: peaks(a, loaded.sample_rate) for c, a in loaded.audio.items()}
    targets = [row["target"]["true_peak_dbtp"] for row in songs.values()]
    conditions = [c for c in next(iter(songs.values())) if c != "target"]
    return {"examples": songs,
            "summary": {c: summarise([row[c] for row in songs.values()], targets) for c in conditions}}


def model_and_fixed(run: Path | None) -> tuple[DeepAFx, FixedSetting | None, str]:
    """The model, its best fixed vector and where they come from."""
    if run is not None:
        folder = RunDir(run)
        if folder.task.name != "mastering":
            raise SystemExit(f"{run} is a run of task {folder.task.name!r}, not mastering")
        return folder.model(), folder.fixed(), str(run)
    model = DeepAFx.pretrained("mastering")
    unit = RunDir(MODELS_DIR / "mastering").fixed_unit()
    return model, None if unit is None else FixedSetting(unit), "fxlib/models/mastering (shipped, seed 0)"


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    run = Run("mastering_peaks")
    task = get_task("mastering")
    model, fixed, source = model_and_fixed(args.run)
    try:
        test = PairedDataset(args.data, "test", int(model.sample_rate), model.channels)
        train = PairedDataset(args.data, "train", int(model.sample_rate), model.channels)
    except Exception as exc:  # a missing or malformed data set: say which and how to build it
        raise SystemExit(f"{args.data}: {exc}\n(build it with `fxlib data mastering build --seed 0`)") from exc
    systems = standard_systems(model, fixed)
    systems.update(task.baselines(args.data, int(model.sample_rate), model.channels, task.profile("quick"), None))
    systems = {name: systems[name] for name in SYSTEMS if name in systems}

    sr = test.sample_rate
    train_peaks = [true_peak_dbtp(target, sr) for _, target in train]
    constant = float(np.median(train_peaks))
    songs = []
    for (x, target), pair in zip(test, test.pairs):
        row = {"id": pair.id, "target": peaks(target, sr),
               "systems": {name: peaks(system(x), sr) for name, system in systems.items()}}
        songs.append(row)
        print(f"{pair.id}: target {row['target']['true_peak_dbtp']:+.2f} dBTP; " + ", ".join(
            f"{n} {r['true_peak_dbtp']:+.2f}" for n, r in row["systems"].items()), flush=True)

    targets = np.array([s["target"]["true_peak_dbtp"] for s in songs])
    summary = {name: summarise([s["systems"][name] for s in songs], targets) for name in systems}
    references = {
        "true_peak_0_dbtp": round(float(np.mean(np.abs(targets))), 3),
        "train_median_constant": {"true_peak_dbtp": round(constant, 3),
                                  "error_db": round(float(np.mean(np.abs(targets - constant))), 3)},
        "test_median_constant": round(float(np.mean(np.abs(targets - np.median(targets)))), 3),
    }
    for name, row in summary.items():
        print(f"{name:18} error {row['true_peak_error_db']:.3f} dB, {row['outputs_at_0_dbfs']}/{len(songs)} at 0 dBFS, "
              f"overshoot {row['mean_overshoot_db']:+.3f} dB")
    print(f"references: {references}")
    paper = paper_stimuli(args.paper_examples) if args.paper_examples else None
    if paper is not None:
        for name, row in paper["summary"].items():
            print(f"paper's {name:15} error {row['true_peak_error_db']:.3f} dB")
    data = {"root": str(args.data), "seed": test.manifest.seed, "generator": test.manifest.params.get("generator")}
    run.write(args.out, {"data": data, "model": source, "test_songs": len(songs), "at_full_scale_db": AT_FULL_SCALE_DB,
                         "references": "true_peak_0_dbtp: the error of an output at 0 dBTP on every song; "
                                       "train_median_constant: of the training targets' median true peak; "
                                       "test_median_constant: of the test targets' own median (not attainable)"},
              summary=summary, references=references, songs=songs, paper_stimuli=paper)


if __name__ == "__main__":
    main()
