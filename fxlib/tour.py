"""The interactive widgets of the tour notebook (``notebooks/00_tour.ipynb``), built on ipywidgets.

* :class:`ChainExplorer`: pick a preset chain (built-in, VST3 or LV2), move one slider per
  learned parameter (named, its native value and unit shown), hear the input and the output
  and see both spectrograms update;
* :class:`GradientDemo` and :func:`plot_spsa_error`: SPSA, finite differences and autodiff
  gradients of a loss through the small differentiable chain of :mod:`fxlib.reference_fx`
  (the maths in :mod:`fxlib.gradcheck`), and how the number of draws K and the step epsilon
  change the SPSA estimate;
* :class:`ModelAB`: a trained model's A/B playback (input, every system of the run, target; or a
  shipped model on a demo phrase, :func:`shipped_example`)
  with its predicted parameter curves.

Each class holds its widgets in ``ui`` and displays it when it is the value of a cell.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .chain import FxChain
from .data.audio import convert_channels, wav_bytes
from .errors import BackendUnavailableError, FxError, PluginNotFoundError
from .experiment import Example, examples
from .gradcheck import (autodiff_gradient, black_box_gradient, reference_problem, relative_error, spsa_cosine,
                        spsa_error)
from .model import DeepAFx
from .plots import curves, display_value, plot_curves, spectrogram
from .presets import CHAINS, load_chain
from .reference_fx import demo_phrase
from .rundir import RunDir


def player(audio: np.ndarray, sample_rate: int) -> Any:
    """An ipywidgets audio player of ``audio`` (``(C, T)``), as 16-bit PCM WAV."""
    import ipywidgets as w

    return w.Audio(value=wav_bytes(audio, sample_rate), format="wav", autoplay=False, loop=False)


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


def plot_spsa_cosine(problem: dict[str, Any], draws: Sequence[int] = (1, 2, 4, 8, 16, 32),
                     epsilons: Sequence[float] = (0.001, 0.01, 0.1), trials: int = 5) -> Any:
    """Gradient quality on a real plugin chain: the cosine of SPSA against central finite
    differences versus K, one line per epsilon (:func:`fxlib.gradcheck.spsa_cosine`)."""
    import matplotlib.pyplot as plt

    cosines = spsa_cosine(problem, draws, epsilons, trials)
    fig, ax = plt.subplots(figsize=(6, 4))
    for eps, row in zip(epsilons, cosines):
        ax.semilogx(draws, row, marker="o", label=f"epsilon {eps:g}", base=2)
    ax.axhline(1.0, color="grey", lw=0.5)
    chain = problem.get("spec", {}).get("name") or "the chain"
    ax.set(xlabel="draws K", ylabel="cosine to finite differences", ylim=(min(0.0, cosines.min() - 0.05), 1.05),
           title=f"SPSA direction on {chain}, {len(problem['names'])} controls (mean of {trials})")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


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
    """A/B playback of excerpts through a trained model's systems, with the predicted parameter curves.

    Args:
        excerpts: the :class:`~fxlib.experiment.Example` excerpts to play (:func:`fxlib.experiment.examples`
            for a run's test files, :func:`shipped_example` for a shipped model).
        curve_names: the parameters to plot (default: the first 9).
    """

    def __init__(self, excerpts: Sequence[Example], curve_names: Sequence[str] | None = None) -> None:
        import ipywidgets as w

        self.examples = list(excerpts)
        if not self.examples:
            raise FxError("ModelAB: no excerpts to play")
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


def shipped_example(name: str, seconds: float = 6.0, seed: int = 0) -> Example:
    """A seeded plucked-string phrase (:func:`fxlib.reference_fx.demo_phrase`, -6 dBFS peak) through
    the shipped model ``name`` (:meth:`fxlib.model.DeepAFx.pretrained`): systems ``input`` and
    ``deepafx``, with the parameters it predicted hop by hop. There is no target."""
    model = DeepAFx.pretrained(name)
    rate = int(model.sample_rate)
    x = np.repeat(demo_phrase(seconds, rate, seed), model.channels, axis=0)
    y, u = model.process(x)
    return Example(f"demo phrase, shipped model {name!r}", rate, 0.0, {"input": x, "deepafx": y}, u,
                   model.frame, model.chain_spec)


def model_section(run_dir: str = "", count: int = 3, seconds: float = 5.0) -> Any:
    """:class:`ModelAB` for ``run_dir``'s test files (a trained run folder; markdown saying how to get
    one when it holds no model), or, with none given,
    for the shipped amp model on a demo phrase: ``"amp"`` (the paper's LV2 chain) where its
    plugins load, else ``"amp-builtin"`` (pedalboard built-ins only)."""
    if run_dir:
        run = RunDir(run_dir)
        if not run.best_path.is_file():
            from IPython.display import Markdown

            return Markdown(f"*No model to play:* `{run.path}` holds no trained model. Train one (`fxlib train "
                            "--task amp --profile smoke --no-progress`, a minute, into `runs/amp-smoke`) or leave "
                            "`run` empty to play the shipped amp model, and run this cell again.")
        return ModelAB(examples(str(run.path), count, seconds))
    try:
        return ModelAB([shipped_example("amp", seconds)])
    except (BackendUnavailableError, PluginNotFoundError):
        return ModelAB([shipped_example("amp-builtin", seconds)])
