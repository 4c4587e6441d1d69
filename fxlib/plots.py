"""Plots and players for the notebooks: what a trained run sounds and looks like.

The task notebooks stay thin: narrative markdown, a ``parameters`` cell, a call into the
experiment layer (:func:`fxlib.experiment.run_task`, :func:`fxlib.experiment.examples`), and
these: the results table (:func:`show_results`, :func:`summary`), audio players
(:func:`players`), spectrograms with labelled events, parameter curves in their units, the
predicted EQ on a frequency axis, loudness over time and the long-term spectrum, the training
curve (:func:`plot_training`) and a chart of the results (:func:`plot_results`), each returned as a
matplotlib figure that :func:`show` displays and saves.
"""
from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .atomic import atomic_output
from .chain import FxChain
from .errors import SpecError
from .evaluate import CLOSER_TO_ZERO, badness, direction_note
from .experiment import Example
from .train import EpochReport
from .metrics import loudness_lufs
from .params import Param
from .paths import resolve
from .rundir import RunDir, folder_record
from .tasks import get_task


def show_results(results: Mapping[str, Any]) -> None:
    """Display the markdown table :func:`fxlib.experiment.run_task` wrote for these results."""
    from IPython.display import Markdown, display

    display(Markdown((Path(results["results_dir"]) / f"{results['task']}.md").read_text()))


def players(example: Example) -> None:
    """Display one labelled audio player per system of ``example`` (embedded, so they stay in saved notebooks)."""
    from IPython.display import Audio, HTML, display

    display(HTML(f"<b>{example.id}</b> ({example.audio['input'].shape[1] / example.sample_rate:.1f} s)"))
    for name, audio in example.systems().items():
        display(HTML(f"{name}:"), Audio(np.clip(audio, -1.0, 1.0), rate=example.sample_rate, normalize=False))


# -- plots --------------------------------------------------------------------------------------
EVENT_COLOURS = {"breath": "tab:cyan", "pop": "tab:red"}


def spectrogram(ax: Any, audio: np.ndarray, sample_rate: int, title: str = "", events: Sequence[Mapping] = (),
                floor_db: float = -100.0) -> Any:
    """Draw the log-magnitude spectrogram of ``audio`` (``(C, T)``, channels averaged) on ``ax``.

    Args:
        sample_rate: Hz; title: axis title.
        events: labelled events (``{"kind", "start", "end"}`` in s) shaded over the spectrogram.
        floor_db: the colour scale's floor, dB relative to full scale.

    Returns:
        The image, for a colour bar.
    """
    from scipy.signal import stft

    mono = np.asarray(audio, np.float64).reshape(-1, np.shape(audio)[-1]).mean(0)
    freqs, times, z = stft(mono, fs=sample_rate, nperseg=1024, noverlap=768)
    db = 20 * np.log10(np.abs(z) + 1e-10)
    image = ax.pcolormesh(times, freqs, db, shading="auto", vmin=floor_db, vmax=0, cmap="magma")
    ax.set(title=title, xlabel="time (s)", ylabel="frequency (Hz)")
    for kinds_seen, event in _labelled(events):
        ax.axvspan(event["start"], event["end"], color=EVENT_COLOURS.get(event["kind"], "white"), alpha=0.3,
                   label=event["kind"] if kinds_seen else None)
    if events:
        ax.legend(loc="upper right", fontsize="small")
    return image


def _labelled(events: Sequence[Mapping]) -> Iterator[tuple[bool, Mapping]]:
    """Each event with True the first time its kind appears (so the legend names each kind once)."""
    seen: set[str] = set()
    for event in events:
        yield event["kind"] not in seen, event
        seen.add(event["kind"])


def plot_spectrograms(example: Example, show_events: bool = True) -> Any:
    """One spectrogram per system of ``example``, stacked; events shaded when ``show_events``."""
    import matplotlib.pyplot as plt

    systems = example.systems()
    fig, axes = plt.subplots(len(systems), 1, figsize=(10, 2.4 * len(systems)), sharex=True, squeeze=False)
    for ax, (name, audio) in zip(axes[:, 0], systems.items()):
        image = spectrogram(ax, audio, example.sample_rate, f"{example.id}: {name}",
                            example.events if show_events else ())
        fig.colorbar(image, ax=ax, label="dBFS")
    for ax in axes[:-1, 0]:
        ax.set_xlabel("")
    fig.tight_layout()
    return fig


def display_value(param: Param, native: Any) -> tuple[float, str]:
    """A native value as shown to people: ``db``-scaled gains in dB, others in their own unit."""
    if param.scale == "db":
        return 20 * math.log10(max(float(native), 1e-12)), "dB"
    return float(native), param.unit


def curves(chain_spec: Mapping, u: np.ndarray, frame: int) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, str]]]:
    """Parameter curves in display units: ``(times (N,) s, {name: (values (N,), unit)})``.

    Args:
        u: ``(N, P)`` unit vectors, one per hop of ``frame`` samples.
    """
    u = np.atleast_2d(u)
    with FxChain.from_spec(chain_spec) as chain:
        rate = chain.sample_rate
        rows = [chain.to_native(row) for row in u]
        out = {}
        for name, param in zip(chain.names, chain.params):
            shown = [display_value(param, r[name]) for r in rows]
            out[name] = (np.array([v for v, _ in shown]), shown[0][1])
    times = (np.arange(len(u)) + 0.5) * frame / rate
    return times, out


def plot_curves(example: Example, names: Sequence[str] | None = None, effect: str | None = None,
                columns: int = 3) -> Any:
    """The model's parameter curves over the excerpt, one small plot per parameter with its unit.

    Args:
        names: the parameters to plot (``"<effect>.<param>"``; default: all of them, or all of ``effect``'s).
        effect: plot only this effect's parameters.
    """
    import matplotlib.pyplot as plt

    times, all_curves = curves(example.chain_spec, example.u, example.frame)
    names = list(names or [n for n in all_curves if effect is None or n.split(".", 1)[0] == effect])
    if not names:
        raise SpecError(f"no learned parameters of an effect named {effect!r}; parameters: {list(all_curves)}")
    unknown = [n for n in names if n not in all_curves]
    if unknown:
        raise SpecError(f"no learned parameters {unknown} in this chain; parameters: {list(all_curves)}")
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.2 * rows), sharex=True, squeeze=False)
    for ax, name in zip(axes.flat, names):
        values, unit = all_curves[name]
        ax.plot(times, values)
        ax.set_title(name, fontsize="small")
        ax.set_ylabel(unit or "(unitless)")
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def eq_band_names(chain_spec: Mapping, effect: str = "geq") -> list[str]:
    """The learned band gains of the chain's graphic EQ ``effect``: its gains that are not overall levels.

    Overall gains are those whose name holds "level" or "master" or ends with "out" (the EQs'
    input/output trims, such as LSP's ``g_out``).
    """
    with FxChain.from_spec(chain_spec) as chain:
        bands = [n for n, p in zip(chain.names, chain.params) if p.owner == effect
                 and not (any(w in p.name for w in ("level", "master")) or p.name.endswith("out"))]
    if not bands:
        raise SpecError(f"the chain has no learned band gains of an effect named {effect!r}")
    return bands


def band_centres_hz(bands: Sequence[str]) -> np.ndarray | None:
    """The centre frequencies (Hz) of graphic-EQ band gains named ``"<effect>.<name>"``, or None.

    Read from the name where it holds one (the built-in ``gain_db_125hz``); LSP's
    ``graph_equalizer_x32`` numbers its bands ``g_0`` .. ``g_31``, a third of an octave apart from
    16 Hz (its port names, "Band gain 16" .. "Band gain 20000"): ``1000 * 2 ** ((k - 18) / 3)``.
    """
    centres = []
    for band in bands:
        name = band.split(".", 1)[-1]
        in_name = re.search(r"(\d+(?:\.\d+)?)\s*hz", name, re.IGNORECASE)
        numbered = re.fullmatch(r"g_(\d+)", name)
        if in_name:
            centres.append(float(in_name.group(1)))
        elif numbered and len(bands) == 32:
            centres.append(1000.0 * 2.0 ** ((int(numbered.group(1)) - 18) / 3))
        else:
            return None
    return np.array(centres)


def plot_eq(example: Example, effect: str = "geq") -> Any:
    """The predicted EQ: band gains (dB) over time as an image, and their mean over the excerpt on
    a frequency axis (the bands' centres, :func:`band_centres_hz`) over the long-term spectra of
    the input and the target (dB, relative to the target's peak), which the EQ moves one towards
    the other."""
    import matplotlib.pyplot as plt
    from scipy.signal import welch

    bands = eq_band_names(example.chain_spec, effect)
    centres = band_centres_hz(bands)
    where = centres if centres is not None else np.arange(len(bands))
    times, all_curves = curves(example.chain_spec, example.u, example.frame)
    gains = np.stack([all_curves[b][0] for b in bands])  # (bands, N) in dB
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5))
    image = top.pcolormesh(times, where, gains, shading="nearest", cmap="coolwarm",
                           vmin=-np.abs(gains).max(), vmax=np.abs(gains).max())
    top.set(title=f"{example.id}: predicted EQ band gains over time", xlabel="time (s)",
            ylabel="band centre (Hz)" if centres is not None else "band")
    fig.colorbar(image, ax=top, label="gain (dB)")
    bottom.plot(where, gains.mean(1), marker="o", color="C3", label="EQ gain, mean over the excerpt")
    bottom.axhline(0, color="grey", lw=0.5)
    bottom.set(title="the predicted EQ over the long-term spectra", ylabel="gain (dB)")
    if centres is None:
        bottom.set_xticks(where, [b.split(".", 1)[1] for b in bands], rotation=90, fontsize="x-small")
    else:
        top.set_yscale("log")
        bottom.set_xscale("log")
        bottom.set_xlabel("frequency (Hz)")
        spectra = bottom.twinx()
        peak = None
        for name, style in (("target", "-"), ("input", ":")):
            freqs, power = welch(example.audio[name].mean(0), fs=example.sample_rate, nperseg=4096)
            level = 10 * np.log10(power[1:] + 1e-20)
            peak = level.max() if peak is None else peak
            spectra.plot(freqs[1:], level - peak, style, color="grey", lw=1, label=f"{name} spectrum")
        spectra.set(ylabel="spectrum (dB re target peak)")
        spectra.legend(loc="lower left", fontsize="small")
    bottom.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    return fig


def short_term_loudness(audio: np.ndarray, sample_rate: int, window: float = 3.0,
                        hop: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """BS.1770 loudness of sliding windows: ``(centre times (M,) s, LUFS (M,))``, -inf for silence."""
    n, step = int(window * sample_rate), int(hop * sample_rate)
    starts = range(0, max(audio.shape[1] - n, 0) + 1, step)
    values = [loudness_lufs(audio[:, s:s + n], sample_rate) for s in starts]
    return (np.array(list(starts)) + n / 2) / sample_rate, np.array(values)


def plot_loudness_spectrum(example: Example) -> Any:
    """Short-term loudness over time and the long-term average spectrum of each system."""
    import matplotlib.pyplot as plt
    from scipy.signal import welch

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    for name, audio in example.systems().items():
        times, lufs = short_term_loudness(audio, example.sample_rate)
        left.plot(times, lufs, marker=".", label=f"{name} ({loudness_lufs(audio, example.sample_rate):.1f} LUFS)")
        freqs, power = welch(audio.mean(0), fs=example.sample_rate, nperseg=4096)
        right.semilogx(freqs[1:], 10 * np.log10(power[1:] + 1e-20), label=name)
    left.set(title="short-term loudness (3 s windows)", xlabel="time (s)", ylabel="LUFS")
    right.set(title="long-term average spectrum", xlabel="frequency (Hz)", ylabel="power (dB/Hz)")
    left.legend(fontsize="small")
    right.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_training(run: str | os.PathLike | RunDir) -> Any:
    """A run's training curve (its ``log.csv``): the training and validation loss per epoch against
    the optimiser step, stage 1 (the regression to the defaults, MSE) beside stage 2 (the
    spectral loss through the effects, one phase per effect added), with the phase boundaries and
    the learning-rate drops marked.

    Args:
        run: a run folder, or an exported model's folder (:func:`fxlib.experiment.export`).
    """
    import matplotlib.pyplot as plt

    folder = run.path if isinstance(run, RunDir) else resolve(run)
    log_path = folder / "log.csv"
    if not log_path.is_file():
        raise SpecError(f"{folder} has no training log (log.csv): has it been trained?")
    with log_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SpecError(f"{log_path} holds no epoch yet")
    record = folder_record(folder)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [1, 3]})
    for ax, stage in zip(axes, ("stage1", "stage2")):
        mine = [r for r in rows if r["phase"].startswith(stage)]
        if not mine:
            ax.set_axis_off()
            continue
        steps = np.array([int(r["global_step"]) for r in mine])
        for key, style in (("train_loss", "-"), ("valid_loss", "o-")):
            ax.plot(steps, [float(r[key]) for r in mine], style, ms=3, label=key.replace("_", " "))
        phases = list(dict.fromkeys(r["phase"] for r in mine))
        for phase in phases[1:]:
            start = min(int(r["global_step"]) for r in mine if r["phase"] == phase)
            ax.axvline(start, color="grey", ls="--", lw=0.8)
            ax.text(start, 1.0, f" {phase}", transform=ax.get_xaxis_transform(), va="top", fontsize="small")
        drops = [int(b["global_step"]) for a, b in zip(mine, mine[1:])
                 if a["phase"] == b["phase"] and float(b["lr"]) < float(a["lr"])]
        for i, step in enumerate(drops):
            ax.axvline(step, color="C2", ls=":", lw=0.8, label="learning rate lowered" if i == 0 else None)
        ax.set(title=f"{stage} ({'MSE to the defaults' if stage == 'stage1' else 'spectral loss, ' + phases[0]})",
               xlabel="optimiser step", ylabel="loss", yscale="log")
        ax.legend(fontsize="small")
    fig.suptitle(f"{record['task']}, {record['chain']}, {record['profile']} profile, seed {record['seed']}")
    fig.tight_layout()
    return fig


class LiveTraining:
    """A training curve that redraws itself in a notebook after every epoch: pass it as
    ``on_epoch`` to :func:`fxlib.experiment.run_task`. Above the curve (:func:`plot_training`)
    a line names the stage, the phase and the epoch, the validation loss, and the time left
    at the pace of the last epochs, at most (early stopping usually ends a phase sooner)."""

    def __init__(self) -> None:
        self.handle: Any = None
        self.paces: dict[str, list[float]] = {}
        self.last = 0.0

    def status(self, report: EpochReport) -> str:
        """The line shown above the curve, for ``report``."""
        seconds, self.last = report.seconds - self.last, report.seconds
        pace = self.paces.setdefault(report.phase.split("-")[0], [])
        pace.append(seconds)
        left = (report.epochs - report.epoch) * float(np.mean(pace[-3:]))
        if report.phase == "stage1":
            where, bound = "stage 1 (regressing the defaults)", f"{left / 60:.1f} min left in stage 1 at most"
        else:
            left += report.later_epochs * float(np.mean(pace[-3:]))
            where = f"stage 2, phase {report.phase.split('-')[1]} of {len(report.phases) - 1} (through the effects)"
            bound = f"at most {left / 60:.0f} min left (early stopping usually ends sooner)"
        return (f"{where}, epoch {report.epoch}/{report.epochs}: valid loss {report.valid_loss:.4g}"
                f"{' (best)' if report.improved else ''}; {report.seconds / 60:.1f} min so far, {bound}")

    def __call__(self, report: EpochReport) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        fig = plot_training(report.run)
        fig.suptitle(self.status(report), fontsize="medium")
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)


def plot_results(results: Mapping[str, Any], metrics: Sequence[str] | None = None) -> Any:
    """A chart of a results table (``<task>.json``): one panel per metric, a bar per system, the
    best system's bar dark, with the direction of better in each title (:func:`fxlib.evaluate.badness`).

    Args:
        metrics: the metrics to show (default: every metric of the ``deepafx`` row).
    """
    import matplotlib.pyplot as plt

    systems = results["systems"]
    higher = get_task(results["task"]).higher_is_better
    metrics = list(metrics or systems["deepafx"])
    unknown = [m for m in metrics if m not in systems["deepafx"]]
    if unknown:
        raise SpecError(f"the results have no metric {unknown[0]!r}; metrics: {list(systems['deepafx'])}")
    columns = min(4, len(metrics))
    rows = -(-len(metrics) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 0.35 * len(systems) * rows + 1.2 * rows),
                             squeeze=False)
    names = list(systems)
    for ax, metric in zip(axes.flat, metrics):
        values = np.array([systems[s][metric] for s in names], dtype=float)
        shown = np.where(np.isfinite(values), values, np.nan)
        best = min(range(len(names)), key=lambda i: badness(metric, values[i], higher) if np.isfinite(values[i])
                   else math.inf)
        ax.barh(names, shown, color="C0", alpha=0.4)
        ax.barh([names[best]], [shown[best]], color="C0")
        ax.invert_yaxis()
        way = "higher" if metric in higher else "closer to 0" if metric in CLOSER_TO_ZERO else "lower"
        ax.set_title(f"{metric}\n({way} is better)", fontsize="medium")
        ax.tick_params(axis="y", labelsize="small")
    for ax in axes.flat[len(metrics):]:
        ax.set_axis_off()
    fig.suptitle(f"{results['task']} test split: {direction_note(higher)}", fontsize="small")
    fig.tight_layout()
    return fig


def save_figure(fig: Any, folder: str | os.PathLike, name: str) -> Path:
    """Save ``fig`` as ``<folder>/<name>.png`` (100 dpi), atomically; returns the path."""
    path = resolve(folder) / f"{name}.png"
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def show(fig: Any, folder: str | os.PathLike | None = None, name: str = "") -> Path | None:
    """Display ``fig`` in the notebook, save it with :func:`save_figure` when ``folder`` is given, close it."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    path = save_figure(fig, folder, name) if folder else None
    display(fig)
    plt.close(fig)
    return path


def summary(results: Mapping[str, Any], metrics: Sequence[str] = ("loss", "mfcc_cosine")) -> str:
    """A few sentences on the results: each metric's best system and DeepAFx against the others.

    Which way is better: :func:`fxlib.evaluate.badness`.
    """
    systems = results["systems"]
    higher = get_task(results["task"]).higher_is_better
    lines = []
    for metric in metrics:
        if metric not in systems.get("deepafx", {}):
            raise SpecError(f"the results have no metric {metric!r}; metrics: {list(systems['deepafx'])}")
        ranked = sorted(systems, key=lambda s: badness(metric, systems[s][metric], higher))
        others = ", ".join(f"{s} {systems[s][metric]:.4g}" for s in ranked if s != "deepafx")
        lines.append(f"{metric}: best is {ranked[0]}; deepafx {systems['deepafx'][metric]:.4g} (others: {others}).")
    return "\n".join(lines)


def show_paper_comparison(task: str, comparison: Mapping[str, Any] | None) -> None:
    """Display, as markdown, the task set beside the paper (:func:`fxlib.report.paper_comparison`;
    None: none recorded)."""
    from IPython.display import Markdown, display

    from .report import paper_comparison

    display(Markdown(paper_comparison(task, comparison)))


def plot_virtual_listening(virtual: Mapping[str, Any], task: str = "") -> Any:
    """The virtual listening test in the paper's layout: one panel per validated measure, a box per
    condition over the excerpts (the line is the median), best condition first.

    Args:
        virtual: a run's ``paper_comparison["virtual_listening"]`` (:func:`fxlib.comparisons.virtual_listening`).
    """
    import matplotlib.pyplot as plt

    measures = virtual["measures"]
    if not measures:
        raise SpecError("the virtual listening test scored no measure")
    fig, axes = plt.subplots(1, len(measures), figsize=(4.5 * len(measures), 3.8), squeeze=False)
    for ax, (name, result) in zip(axes[0], measures.items()):
        order = result["order"]
        data = [[row[c] for row in result["scores"].values() if row.get(c) is not None] for c in order]
        ax.boxplot(data, showfliers=True)
        ax.set_xticks(range(1, len(order) + 1), order, rotation=30, ha="right")
        better = "higher" if result["higher_is_better"] else "lower"
        ax.set(title=f"{name} ({better} is better)", ylabel=result["unit"])
    fig.suptitle(f"{task} virtual listening test: {len(virtual['excerpts'])} excerpts of "
                 f"{virtual['protocol']['seconds']:g} s".strip())
    fig.tight_layout()
    return fig
