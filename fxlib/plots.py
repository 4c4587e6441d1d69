"""Plots and players for the notebooks: what a trained run sounds and looks like.

The task notebooks stay thin: narrative markdown, a ``parameters`` cell, a call into the
experiment layer (:func:`fxlib.experiment.run_task`, :func:`fxlib.experiment.examples`), and
these: the results table (:func:`show_results`, :func:`summary`), audio players
(:func:`players`), spectrograms with labelled events, parameter curves in their units, the
predicted EQ, loudness over time and the long-term spectrum, each returned as a matplotlib
figure that :func:`show` displays and saves.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .atomic import atomic_output
from .chain import FxChain
from .errors import SpecError
from .evaluate import badness
from .experiment import Example
from .metrics import loudness_lufs
from .params import Param
from .paths import resolve
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


def plot_eq(example: Example, effect: str = "geq") -> Any:
    """The predicted EQ: band gains (dB) over time as an image, and their mean over the excerpt."""
    import matplotlib.pyplot as plt

    bands = eq_band_names(example.chain_spec, effect)
    times, all_curves = curves(example.chain_spec, example.u, example.frame)
    gains = np.stack([all_curves[b][0] for b in bands])  # (bands, N) in dB
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6))
    image = top.pcolormesh(times, np.arange(len(bands)), gains, shading="auto", cmap="coolwarm",
                           vmin=-np.abs(gains).max(), vmax=np.abs(gains).max())
    top.set(title=f"{example.id}: predicted EQ band gains over time", xlabel="time (s)", ylabel="band")
    fig.colorbar(image, ax=top, label="gain (dB)")
    bottom.plot(np.arange(len(bands)), gains.mean(1), marker="o")
    bottom.axhline(0, color="grey", lw=0.5)
    bottom.set_xticks(np.arange(len(bands)), [b.split(".", 1)[1] for b in bands], rotation=90, fontsize="x-small")
    bottom.set(title="mean over the excerpt", ylabel="gain (dB)")
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


def show_paper_comparison(task: str, comparison: Mapping[str, Any]) -> None:
    """Display, as markdown, the task set beside the paper (:func:`fxlib.report.paper_comparison`)."""
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
