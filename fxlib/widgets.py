"""The interactive widgets of the tour notebook (``notebooks/00_tour.ipynb``), built on ipywidgets.

* :class:`ChainExplorer`: pick a preset chain (built-in, VST3 or LV2), move one slider per
  learned parameter (named, its native value and unit shown), hear the input and the output
  and see both spectrograms update;
* :class:`GradientDemo` and :func:`plot_spsa_error`: SPSA, finite differences and autodiff
  gradients of a loss through the small differentiable chain of :mod:`fxlib.reference_fx`,
  and how the number of draws K and the step epsilon change the SPSA estimate;
* :class:`ModelAB`: a trained model's A/B playback (input, model, best fixed, target) with its
  predicted parameter curves.

Each class holds its widgets in ``ui`` and displays it when it is the value of a cell.
"""
from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np
import torch

from .chain import FxChain
from .data.audio import convert_channels
from .errors import FxError
from .layer import BlackBoxFx
from .notebook import Example, curves, display_value, examples, plot_curves, spectrogram
from .presets import CHAINS, load_chain
from .reference_fx import EFFECTS, chain_spec as reference_spec, render_torch


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV file contents of ``audio`` (``(C, T)`` float, clipped to [-1, 1])."""
    from scipy.io import wavfile

    frames = (np.clip(np.asarray(audio, np.float64), -1.0, 1.0).T * 32767).astype(np.int16)
    buffer = io.BytesIO()
    wavfile.write(buffer, int(sample_rate), frames[:, 0] if frames.shape[1] == 1 else frames)
    return buffer.getvalue()


def player(audio: np.ndarray, sample_rate: int) -> Any:
    """An ipywidgets audio player of ``audio`` (``(C, T)``)."""
    import ipywidgets as w

    return w.Audio(value=wav_bytes(audio, sample_rate), format="wav", autoplay=False, loop=False)


def tour_clip(seconds: float = 4.0, sample_rate: int = 22050, seed: int = 0, peak_dbfs: float = -6.0) -> np.ndarray:
    """A seeded electric-guitar riff rendered with FluidSynth, normalised to ``peak_dbfs``.

    Shape:
        ``(1, round(seconds * sample_rate))`` float32.
    """
    from .data.midi import random_riff, synthesize

    rng = np.random.default_rng(seed)
    audio = synthesize([random_riff(rng, "guitar", seconds, 110.0, program=29)], seconds, sample_rate)
    peak = float(np.abs(audio).max())
    if peak == 0:
        raise FxError(f"the FluidSynth render of the tour's riff (seed {seed}) is silent")
    return (audio * (10 ** (peak_dbfs / 20) / peak)).astype(np.float32)


def _show_figure(output: Any, fig: Any) -> None:
    """Replace what ``output`` (an ipywidgets Output) shows with ``fig``, then close the figure."""
    import matplotlib.pyplot as plt
    from IPython.display import clear_output, display

    with output:
        clear_output(wait=True)
        display(fig)
    plt.close(fig)


class ChainExplorer:
    """Process a clip through a preset chain whose learned parameters are set with sliders.

    Args:
        audio: float32 ``(C, T)`` at ``sample_rate``; converted to each chain's channel count.
        sample_rate: Hz; chains are built at this rate.
        chain: the preset to start with (one of :data:`fxlib.presets.CHAINS`).

    A chain that cannot be built here (its plugin is not installed) is reported in the widget
    and the previous chain stays. Sliders move the parameter in [0, 1] (the network's units); the
    label beside each shows the native value with its unit (gains of ``db``-scaled controls in dB).
    """

    def __init__(self, audio: np.ndarray, sample_rate: int, chain: str = "amp-builtin") -> None:
        import ipywidgets as w

        self.audio, self.sample_rate = np.asarray(audio, np.float32), int(sample_rate)
        self.chain: FxChain | None = None
        self.picker = w.Dropdown(options=list(CHAINS), value=chain, description="chain")
        self.status = w.HTML()
        self.sliders = w.VBox()
        self.reset_button = w.Button(description="defaults", tooltip="every parameter at its default")
        self.players = w.HBox()
        self.plots = w.Output()
        self.controls: list[tuple[Any, Any]] = []
        self._holding = False
        self.ui = w.VBox([w.HBox([self.picker, self.reset_button]), self.status, self.sliders, self.players,
                          self.plots])
        self.picker.observe(lambda change: self.select(change["new"]), names="value")
        self.reset_button.on_click(self._reset)
        self.select(chain)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.ui)

    def select(self, name: str) -> None:
        """Build preset ``name`` and its sliders; on failure report it and keep the current chain."""
        import ipywidgets as w

        try:
            chain = load_chain(name, self.sample_rate)
        except FxError as e:
            self.status.value = f"<b>{name}</b> cannot be built here: {e}"
            return
        if self.chain is not None:
            self.chain.close()
        self.chain = chain
        self.input = convert_channels(self.audio, chain.channels)
        self.status.value = f"<b>{name}</b>: {chain.description or ''} ({chain.num_params} learned parameters)"
        self.controls = []
        for param, u in zip(chain.params, chain.default_unit()):
            label = f"{param.owner}.{param.name}"
            if param.scale == "choice":
                control = w.Dropdown(options=[(str(c), param.to_unit(c)) for c in param.choices],
                                     value=param.to_unit(param.default), description=label)
            else:
                control = w.FloatSlider(value=float(u), min=0.0, max=1.0, step=0.005, description=label,
                                        readout=False, continuous_update=False,
                                        style={"description_width": "180px"}, layout=w.Layout(width="420px"))
            value = w.Label()
            control.observe(self._changed, names="value")
            self.controls.append((control, value))
        self.sliders.children = [w.HBox([c, v]) for c, v in self.controls]
        self.render()

    def unit(self) -> np.ndarray:
        """The current parameter vector ``(P,)`` in [0, 1]."""
        return np.array([control.value for control, _ in self.controls], dtype=np.float64)

    def set_unit(self, u: Sequence[float]) -> None:
        """Move every control to ``u`` (``(P,)`` in [0, 1]) and render once."""
        self._holding = True
        try:
            for (control, _), x in zip(self.controls, u):
                control.value = float(x)
        finally:
            self._holding = False
        self.render()

    def _reset(self, _: Any) -> None:
        if self.chain is not None:
            self.set_unit(self.chain.default_unit())

    def _changed(self, _: Any) -> None:
        if not self._holding:
            self.render()

    def render(self) -> np.ndarray:
        """Process the clip at the current parameters, update labels, players and spectrograms.

        Returns:
            The output, float32 ``(C, T)``.
        """
        import matplotlib.pyplot as plt
        import ipywidgets as w

        u = self.unit()
        for (control, label), param, (name, native) in zip(self.controls, self.chain.params,
                                                          self.chain.to_native(u).items()):
            value, unit = display_value(param, native)
            label.value = f"{value:.3g} {unit}".strip()
        output = self.chain.process(self.input, u)
        self.output = output
        self.players.children = [w.VBox([w.Label("input"), player(self.input, self.sample_rate)]),
                                 w.VBox([w.Label("output"), player(output, self.sample_rate)])]
        fig, axes = plt.subplots(1, 2, figsize=(11, 3), sharey=True)
        spectrogram(axes[0], self.input, self.sample_rate, "input")
        image = spectrogram(axes[1], output, self.sample_rate, "output")
        fig.colorbar(image, ax=axes, label="dBFS")
        _show_figure(self.plots, fig)
        return output


# -- gradients: SPSA, finite differences and autodiff on the reference chain ------------------
REFERENCE_EFFECTS = ("gain", "lowpass", "soft_clip")


def reference_problem(seconds: float = 0.25, sample_rate: int = 22050, seed: int = 0) -> dict[str, Any]:
    """A small regression problem through the reference chain (gain, one-pole low-pass, soft clip).

    The target is seeded noise through the chain at ``target`` parameters; the gradients are
    taken at ``u``, away from the target. The loss is the mean squared error.

    Returns:
        ``{"audio": (1, 1, T) float64 tensor, "target": (1, 1, T), "u": (1, 3), "u_target": (1, 3),
        "sample_rate": Hz, "names": [...], "params": [Param, ...]}``.
    """
    rng = np.random.default_rng(seed)
    audio = torch.from_numpy(0.3 * rng.standard_normal((1, 1, int(seconds * sample_rate))))
    u_target = torch.tensor([[0.6, 0.4, 0.5]], dtype=torch.float64)
    u = torch.tensor([[0.45, 0.6, 0.3]], dtype=torch.float64)
    target = render_torch(audio, u_target, REFERENCE_EFFECTS, sample_rate)
    return {"audio": audio, "target": target, "u": u, "u_target": u_target, "sample_rate": sample_rate,
            "names": [f"{n}.{EFFECTS[n][1].name}" for n in REFERENCE_EFFECTS],
            "params": [EFFECTS[n][1] for n in REFERENCE_EFFECTS]}


def autodiff_gradient(problem: dict[str, Any]) -> np.ndarray:
    """The exact gradient ``dL/du`` ``(P,)`` by torch autograd through the torch twins."""
    u = problem["u"].clone().requires_grad_(True)
    out = render_torch(problem["audio"], u, REFERENCE_EFFECTS, problem["sample_rate"])
    torch.mean((out - problem["target"]) ** 2).backward()
    return u.grad[0].numpy()


def black_box_gradient(problem: dict[str, Any], method: str = "spsa", draws: int = 1, epsilon: float = 0.01,
                       seed: int = 0, layer: BlackBoxFx | None = None) -> np.ndarray:
    """``dL/du`` ``(P,)`` through :class:`~fxlib.layer.BlackBoxFx` rendering the numpy effects.

    Args:
        method: "spsa" (``draws`` Rademacher draws) or "fd" (central finite differences).
        epsilon: the perturbation step in normalised units.
        layer: a layer to reuse (its own method, draws and epsilon apply); else one is built.
    """
    own = layer is None
    if own:
        spec = reference_spec(REFERENCE_EFFECTS, problem["sample_rate"])
        layer = BlackBoxFx(spec, workers=1, mode="clip", method=method, draws=draws, epsilon=epsilon, seed=seed,
                           inline=True)
    try:
        u = problem["u"].clone().requires_grad_(True)
        out = layer(problem["audio"].float(), u)
        torch.mean((out.double() - problem["target"]) ** 2).backward()
        return u.grad[0].numpy()
    finally:
        if own:
            layer.close()


def relative_error(estimate: np.ndarray, exact: np.ndarray) -> float:
    """``|estimate - exact| / |exact|`` (Euclidean norms)."""
    return float(np.linalg.norm(estimate - exact) / np.linalg.norm(exact))


def spsa_error(problem: dict[str, Any], draws: Sequence[int] = (1, 2, 4, 8, 16, 32),
               epsilons: Sequence[float] = (0.001, 0.01, 0.1), trials: int = 5) -> np.ndarray:
    """Mean relative error of SPSA against autodiff over ``trials`` estimates.

    Returns:
        ``(len(epsilons), len(draws))``.
    """
    exact = autodiff_gradient(problem)
    spec = reference_spec(REFERENCE_EFFECTS, problem["sample_rate"])
    errors = np.zeros((len(epsilons), len(draws)))
    for i, eps in enumerate(epsilons):
        for j, k in enumerate(draws):
            with BlackBoxFx(spec, workers=1, mode="clip", draws=k, epsilon=eps, seed=1000 * i + j,
                            inline=True) as layer:
                errors[i, j] = np.mean([relative_error(black_box_gradient(problem, layer=layer), exact)
                                        for _ in range(trials)])
    return errors


def plot_spsa_error(problem: dict[str, Any], draws: Sequence[int] = (1, 2, 4, 8, 16, 32),
                    epsilons: Sequence[float] = (0.001, 0.01, 0.1), trials: int = 5) -> Any:
    """Relative error of SPSA against autodiff versus K, one line per epsilon (log-log)."""
    import matplotlib.pyplot as plt

    errors = spsa_error(problem, draws, epsilons, trials)
    fig, ax = plt.subplots(figsize=(6, 4))
    for eps, row in zip(epsilons, errors):
        ax.loglog(draws, row, marker="o", label=f"epsilon {eps:g}")
    ax.loglog(draws, errors[:, 0].min() / np.sqrt(np.asarray(draws, float)), "k--", lw=0.8, label="1 / sqrt(K)")
    ax.set(xlabel="draws K", ylabel="relative error vs autodiff", title=f"SPSA error (mean of {trials} estimates)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


class GradientDemo:
    """Sliders for K and epsilon; shows SPSA, finite differences and autodiff gradients side by side."""

    def __init__(self, problem: dict[str, Any] | None = None) -> None:
        import ipywidgets as w

        self.problem = problem or reference_problem()
        self.draws = w.IntSlider(value=1, min=1, max=64, description="draws K", continuous_update=False)
        self.epsilon = w.FloatLogSlider(value=0.01, base=10, min=-4, max=-0.5, step=0.25, description="epsilon",
                                        readout_format=".4f", continuous_update=False)
        self.seed = w.IntText(value=0, description="seed", layout=w.Layout(width="160px"))
        self.table = w.HTML()
        for control in (self.draws, self.epsilon, self.seed):
            control.observe(lambda _: self.update(), names="value")
        self.ui = w.VBox([w.HBox([self.draws, self.epsilon, self.seed]), self.table])
        self.update()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.ui)

    def update(self) -> dict[str, np.ndarray]:
        """Recompute the three gradients; returns ``{method: (P,)}``."""
        p = self.problem
        grads = {"autodiff": autodiff_gradient(p),
                 "finite differences": black_box_gradient(p, "fd", epsilon=self.epsilon.value),
                 f"SPSA, K={self.draws.value}": black_box_gradient(p, "spsa", self.draws.value, self.epsilon.value,
                                                                  self.seed.value)}
        exact = grads["autodiff"]
        u = p["u"][0].numpy()
        rows = "".join(f"<tr><td>{name}</td><td>{display_value(param, param.to_native(x))[0]:.3g} {param.unit}</td>"
                       + "".join(f"<td>{g[i]:+.4g}</td>" for g in grads.values()) + "</tr>"
                       for i, (name, param, x) in enumerate(zip(p["names"], p["params"], u)))
        errors = "".join(f"<td>{relative_error(g, exact):.3g}</td>" for g in grads.values())
        self.table.value = ("<table><tr><th>parameter</th><th>value</th>"
                            + "".join(f"<th>{m}</th>" for m in grads) + "</tr>" + rows
                            + f"<tr><td colspan=2><i>relative error vs autodiff</i></td>{errors}</tr></table>")
        return grads


# -- a trained model: A/B playback and parameter curves -----------------------------------------
class ModelAB:
    """A/B playback of a trained run's test excerpts with the predicted parameter curves.

    Args:
        run_dir: a finished run folder (``best.pt``); count, seconds: see :func:`fxlib.notebook.examples`.
        curve_names: the parameters to plot (default: the first 9).
    """

    def __init__(self, run_dir: str, count: int = 3, seconds: float = 5.0,
                 curve_names: Sequence[str] | None = None) -> None:
        import ipywidgets as w

        self.examples: list[Example] = examples(run_dir, count, seconds)
        if not self.examples:
            raise FxError(f"{run_dir}: its test split holds no files to play")
        names = list(curves(self.examples[0].chain_spec, self.examples[0].u[:1], self.examples[0].frame)[1])
        self.curve_names = list(curve_names or names[:9])
        self.picker = w.Dropdown(options=[(e.id, i) for i, e in enumerate(self.examples)], description="file")
        self.system = w.ToggleButtons(options=list(self.examples[0].systems()), description="play")
        self.player = w.Box()
        self.plots = w.Output()
        self.picker.observe(lambda _: self.update(curves=True), names="value")
        self.system.observe(lambda _: self.update(curves=False), names="value")
        self.ui = w.VBox([w.HBox([self.picker]), self.system, self.player, self.plots])
        self.update(curves=True)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.ui)

    def update(self, curves: bool = True) -> None:
        """Load the chosen system's audio into the player; redraw the curves when ``curves``."""
        example = self.examples[self.picker.value]
        self.player.children = [player(example.systems()[self.system.value], example.sample_rate)]
        if curves:
            _show_figure(self.plots, plot_curves(example, self.curve_names))


def model_section(run_dir: str, count: int = 3, seconds: float = 5.0) -> Any:
    """:class:`ModelAB` for ``run_dir`` when it holds a trained model, else markdown saying how to get one."""
    from IPython.display import Markdown

    from .notebook import resolve

    if run_dir and (resolve(run_dir) / "best.pt").is_file():
        return ModelAB(run_dir, count, seconds)
    where = f"`{run_dir}` holds no trained model (`best.pt`)" if run_dir else "no run folder is set (`run`)"
    return Markdown(f"*No model to play:* {where}. Train one with `make reproduce` (writes `runs/amp-quick`) or "
                    f"`fxlib train --task amp --profile smoke --no-progress` (a minute; then set `run = "
                    f"\"runs/amp-smoke\"`), and run this cell again.")
