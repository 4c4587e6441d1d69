"""fxlib.plots: the EQ on a frequency axis, the results chart and the training curve."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fxlib import plots  # noqa: E402
from fxlib.chain import FxChain  # noqa: E402
from fxlib.errors import SpecError  # noqa: E402
from fxlib.experiment import Example  # noqa: E402
from fxlib.presets import chain_spec  # noqa: E402
from fxlib.rundir import RunDir  # noqa: E402


def test_band_centres_come_from_the_names_or_lsps_third_octaves():
    lsp = plots.band_centres_hz([f"geq.g_{k}" for k in range(32)])
    assert lsp[0] == pytest.approx(15.6, abs=0.1) and lsp[18] == 1000.0 and lsp[-1] == pytest.approx(20159, rel=1e-3)
    assert np.allclose(np.diff(np.log2(lsp)), 1 / 3)
    assert list(plots.band_centres_hz(["geq.gain_db_32hz", "geq.gain_db_8000hz"])) == [32.0, 8000.0]
    assert plots.band_centres_hz(["geq.g_0", "geq.g_1"]) is None  # not LSP's 32 bands: no guess


@pytest.mark.parametrize("chain", ["mastering-builtin", "mastering-lv2"])
def test_the_eq_is_drawn_against_frequency_over_the_spectra(chain):
    spec = chain_spec(chain)
    bands = plots.eq_band_names(spec)
    rng = np.random.default_rng(0)
    audio = {name: (0.1 * rng.standard_normal((1, 22050))).astype(np.float32) for name in ("input", "target")}
    with FxChain.from_spec(spec) as c:
        u = rng.random((21, c.num_params))
    fig = plots.plot_eq(Example("x", 22050, 0.0, audio, u, 1024, spec))
    bottom = fig.axes[1]
    assert bottom.get_xscale() == "log" and bottom.get_xlabel() == "frequency (Hz)"
    line = bottom.get_lines()[0]
    assert list(line.get_xdata()) == list(plots.band_centres_hz(bands))
    assert len(fig.axes[-1].get_lines()) == 2  # the target's and the input's spectra


def results(**deepafx):
    return {"task": "mastering", "systems": {
        "input": {"loss": 3.0, "loudness_difference_lufs": -6.0, "true_peak_error_db": 3.0},
        "deepafx": {"loss": 1.0, "loudness_difference_lufs": 0.5, "true_peak_error_db": 2.0, **deepafx},
        "matchering": {"loss": 2.0, "loudness_difference_lufs": -0.2, "true_peak_error_db": 0.5}}}


def test_the_results_chart_marks_the_best_system_and_which_way_is_better():
    fig = plots.plot_results(results())
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["loss\n(lower is better)", "loudness_difference_lufs\n(closer to 0 is better)",
                      "true_peak_error_db\n(lower is better)"]
    for ax, best in zip(fig.axes, ["deepafx", "matchering", "matchering"]):
        dark = ax.patches[-1]  # the best system's bar, drawn last over the pale ones
        assert dark.get_alpha() is None and ax.get_yticklabels()[round(dark.get_y() + dark.get_height() / 2)].get_text() == best
    with pytest.raises(SpecError, match="no metric 'pesq'"):
        plots.plot_results(results(), ["pesq"])


def test_the_training_curve_marks_phases_and_learning_rate_drops(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(SpecError, match="no training log"):
        plots.plot_training(run)
    rows = ["phase,epoch,step,global_step,train_loss,valid_loss,lr,seconds",
            "stage1,1,4,4,0.08,0.09,0.001,1", "stage2-1,1,4,8,3.7,15,0.0001,1", "stage2-1,2,4,12,3.1,12,0.00005,1",
            "stage2-2,1,4,16,2.9,11,0.00004,1"]
    (tmp_path / "log.csv").write_text("\n".join(rows) + "\n")
    from test_rundir import record

    run.start(record())
    fig = plots.plot_training(run)
    stage2 = fig.axes[1]
    lines = {line.get_label(): line for line in stage2.get_lines()}
    assert list(lines["valid loss"].get_ydata()) == [15.0, 12.0, 11.0]
    assert list(lines["learning rate lowered"].get_xdata()) == [12, 12]
    assert [t.get_text() for t in stage2.texts] == [" stage2-2"]
