"""Helpers shared by the notebooks in ``notebooks/``, so that each notebook stays thin.

A task notebook holds narrative markdown, a ``parameters`` cell of plain literals (papermill
injects other values), and calls into this module: :func:`run_task` trains and evaluates,
the plotting and audio helpers show the results.
"""
from __future__ import annotations

import contextlib
import math
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from .atomic import atomic_output
from .chain import FxChain
from .data.audio import save_audio
from .data.paired import PairedDataset
from .errors import SpecError
from .metrics import loudness_lufs
from .evaluate import FixedSetting
from .model import DeepAFx
from .params import Param


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The deepafx-fxlib checkout: the folder holding ``pyproject.toml``, searched upward from
    ``start`` (default: the cwd), else the checkout this fxlib is imported from (an editable
    install, as ``make setup`` makes).

    Notebooks' path parameters (data, runs, results) are relative to this folder, so a notebook
    gives the same paths whether it runs from ``notebooks/`` (JupyterLab), the root (papermill)
    or a copy elsewhere (nbmake on a parameterised copy).

    Raises:
        SpecError: when neither place holds a ``pyproject.toml``.
    """
    here = Path(start or Path.cwd()).resolve()
    installed = Path(__file__).resolve().parents[1]
    for folder in (here, *here.parents, installed):
        if (folder / "pyproject.toml").is_file():
            return folder
    raise SpecError(f"no pyproject.toml in {here} or any folder above it, nor in {installed}; run the notebook "
                    f"inside the deepafx-fxlib checkout (or pass its path)")


def resolve(path: str | os.PathLike, root: Path | None = None) -> Path:
    """``path`` as given when absolute, else relative to :func:`project_root` (or ``root``)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else (root or project_root()) / path


@contextlib.contextmanager
def _in_folder(folder: Path) -> Iterator[None]:
    """Run the block with ``folder`` as the working directory, then return to the previous one."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def train_command(task: str, profile: str, data: str, chain: str | None, seed: int, out: str,
                  results: str) -> str:
    """The ``fxlib train`` command line that does what :func:`run_task` does with these arguments."""
    words = ["fxlib", "train", "--task", task, "--profile", profile, "--data", str(data), "--out", str(out),
             "--seed", str(seed), "--results", str(results)]
    if chain:
        words += ["--chain", chain]
    return shlex.join(words + ["--no-progress"])


def run_task(task: str, profile: str = "quick", data: str | None = None, chain: str | None = None,
             seed: int = 0, out: str | None = None, results: str = "paper/results",
             notebook: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Train a task's model and its best-fixed baseline, evaluate them and write the results.

    The same steps as ``fxlib train`` (:func:`fxlib.train.train_and_evaluate`; :func:`train_command`
    gives the equivalent command, recorded in the results): training resumes a run folder that
    holds a checkpoint, and a finished run is not trained again.

    Args:
        task: "amp", "breath" or "mastering"; profile: "smoke", "quick" or "paper".
        data: dataset folder (default ``data/<task>``; built offline when it holds no manifest,
            so a folder holding the paper's downloaded data is used as it is).
        chain: a preset chain name, or None for the task's first chain that builds here.
        seed: seeds the data build, the initialisation and the perturbations.
        out: run folder (default ``runs/<task>-<profile>``).
        results: folder of ``<task>.json`` and ``<task>.md``.
        notebook: the notebook that ran this, recorded in the results.
        progress: show progress bars.

    Relative paths are relative to :func:`project_root`; they are recorded as given.

    Returns:
        The results (as written to ``<results>/<task>.json``), with ``run_dir`` added.
    """
    from .train import train_and_evaluate

    data = data or f"data/{task}"
    out = out or f"runs/{task}-{profile}"
    command = train_command(task, profile, data, chain, seed, out, results)
    with _in_folder(project_root()):
        results_data = train_and_evaluate(task, profile, out, data=data, chain=chain or None, seed=seed,
                                          results=results, progress=progress, command=command,
                                          extra={"notebook": notebook})
    return {**results_data, "run_dir": str(resolve(out))}


def show_results(results: Mapping[str, Any], results_dir: str = "paper/results") -> None:
    """Display the markdown table that :func:`run_task` wrote for ``results["task"]``."""
    from IPython.display import Markdown, display

    display(Markdown((resolve(results_dir) / f"{results['task']}.md").read_text()))


# -- examples: a few short excerpts of the test split through every system -------------------
@dataclass
class Example:
    """One excerpt of a test file through the trained model and the best fixed vector.

    Attributes:
        id: the test pair's id; sample_rate: Hz; offset: start of the excerpt in the file, s.
        input, target, deepafx, best_fixed: float32 ``(C, T)`` audio (``best_fixed`` None when
            the run has no ``fixed.json``).
        u: ``(N, P)`` the model's parameter vectors in [0, 1], one per hop of ``frame`` samples.
        chain_spec: the chain the parameters drive.
        events: labelled events inside the excerpt (``Pair.info["events"]``, times relative
            to the excerpt's start, in s; empty when the data has none).
    """

    id: str
    sample_rate: int
    offset: float
    input: np.ndarray
    target: np.ndarray
    deepafx: np.ndarray
    best_fixed: np.ndarray | None
    u: np.ndarray
    frame: int
    chain_spec: dict
    events: list[dict] = field(default_factory=list)

    def systems(self) -> dict[str, np.ndarray]:
        """``{name: audio (C, T)}``: input, deepafx, best fixed (when present) and target."""
        out = {"input": self.input, "deepafx": self.deepafx}
        if self.best_fixed is not None:
            out["chain-best-fixed"] = self.best_fixed
        return {**out, "target": self.target}


def examples(run_dir: str | os.PathLike, count: int = 2, seconds: float = 5.0,
             split: str = "test") -> list[Example]:
    """The first ``seconds`` of the first ``count`` files of ``split``, through the run's systems.

    Args:
        run_dir: a finished run folder (``best.pt``; ``fixed.json`` optional).
        count: files; seconds: excerpt length in s (shorter files are taken whole).

    Raises:
        FileNotFoundError: when ``run_dir`` holds no ``best.pt``.
    """
    run_dir = resolve(run_dir)
    best = run_dir / "best.pt"
    if not best.is_file():
        raise FileNotFoundError(f"{run_dir} holds no trained model (best.pt); run the task first")
    model = DeepAFx.from_checkpoint(best)
    state = torch.load(best, map_location="cpu", weights_only=False)
    fixed = FixedSetting.load(run_dir)
    rate = int(model.sample_rate)
    with _in_folder(project_root()):
        dataset = PairedDataset(state["run"]["data_root"], split, rate, model.channels)
    found = []
    for i, pair in enumerate(dataset.pairs[:count]):
        x, target = dataset[i]
        n = min(x.shape[1], int(seconds * rate))
        x, target = np.ascontiguousarray(x[:, :n]), np.ascontiguousarray(target[:, :n])
        y, u = model.process(x)
        events = [e for e in (pair.info or {}).get("events", []) if e["start"] < n / rate]
        found.append(Example(pair.id, rate, 0.0, x, target, y,
                             None if fixed is None else fixed.render(model, x),
                             u, model.frame, model.chain_spec, events))
    return found


def export_examples(found: Sequence[Example], folder: str | os.PathLike,
                    systems: Sequence[str] = ("input", "deepafx", "target")) -> list[Path]:
    """Write the given systems of each example as WAV files ``<folder>/<id>_<system>.wav``.

    The audio is clipped to [-1, 1] (what a player would play) and stored as 32-bit float.
    """
    folder = resolve(folder)
    written = []
    for ex in found:
        audio = ex.systems()
        missing = [s for s in systems if s not in audio]
        if missing:
            raise SpecError(f"example {ex.id} has no systems {missing}; it has {list(audio)}")
        for name in systems:
            written.append(save_audio(folder / f"{ex.id}_{name}.wav", np.clip(audio[name], -1.0, 1.0),
                                      ex.sample_rate))
    return written


def players(example: Example) -> None:
    """Display one labelled audio player per system of ``example`` (embedded, so they stay in saved notebooks)."""
    from IPython.display import Audio, HTML, display

    display(HTML(f"<b>{example.id}</b> ({example.input.shape[1] / example.sample_rate:.1f} s)"))
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
    """A few sentences on the results: each metric's best system and DeepAFx against the baselines."""
    systems = results["systems"]
    lines = []
    for metric in metrics:
        if metric not in systems.get("deepafx", {}):
            raise SpecError(f"the results have no metric {metric!r}; metrics: {list(systems['deepafx'])}")
        ranked = sorted(systems, key=lambda s: _badness(results["task"], metric, systems[s][metric]))
        others = ", ".join(f"{s} {systems[s][metric]:.4g}" for s in ranked if s != "deepafx")
        lines.append(f"{metric}: best is {ranked[0]}; deepafx {systems['deepafx'][metric]:.4g} (others: {others}).")
    return "\n".join(lines)


def _badness(task: str, metric: str, value: float) -> float:
    """A number that is smaller for better values of ``metric`` (the direction the results table uses)."""
    from .evaluate import CLOSER_TO_ZERO
    from .tasks import get_task

    if metric in get_task(task).higher_is_better:
        return -value
    return abs(value) if metric in CLOSER_TO_ZERO else value
