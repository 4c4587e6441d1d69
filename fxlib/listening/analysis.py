"""Analysis: ratings as a table, post-screening, paired tests, box plots, simulated listeners."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..data.audio import DataError, DataNotFoundError
from ..errors import SpecError

from .formats import ANCHOR, CARELESS, HIDDEN_REFERENCE, SCALE, SIMULATED_PREFIX, StimuliMismatchError
from .session import ListeningSession, read_ratings_file
from .stimuli import read_stimuli
if TYPE_CHECKING:  # heavy or optional imports, loaded where used
    import pandas
    from matplotlib.figure import Figure


def load_ratings(ratings_dir: str | os.PathLike, stimuli_dir: str | os.PathLike | None = None) -> "pandas.DataFrame":
    """Every rated trial of every ratings file in ``ratings_dir`` as a tidy table.

    Args:
        ratings_dir: the folder of ``<listener>.json`` files (other JSON files are refused).
        stimuli_dir: when given, every file must be rated on this stimuli set.

    Returns:
        a ``pandas.DataFrame`` with one row per rating and the columns ``listener``,
        ``trial``, ``system``, ``rating`` (0-100) and ``simulated`` (bool), sorted.

    Raises:
        DataNotFoundError: the folder does not exist or holds no ratings files.
        StimuliMismatchError: files from different stimuli sets (or not from ``stimuli_dir``'s).
    """
    import pandas

    folder = Path(ratings_dir)
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        raise DataNotFoundError(f"no ratings files (<listener>.json) in {folder}")
    expected = read_stimuli(stimuli_dir)["fingerprint"] if stimuli_dir is not None else None
    rows, fingerprints = [], {}
    for path in files:
        state = read_ratings_file(path)
        fingerprints[path.name] = state["fingerprint"]
        if expected is not None and state["fingerprint"] != expected:
            raise StimuliMismatchError(f"{path} was rated on another stimuli set than {stimuli_dir}")
        for trial, record in state["ratings"].items():
            rows += [{"listener": state["listener"], "trial": trial, "system": system, "rating": float(score),
                      "simulated": bool(state["simulated"])} for system, score in record["ratings"].items()]
    if len(set(fingerprints.values())) > 1:
        raise StimuliMismatchError(f"{folder} mixes ratings of different stimuli sets: {fingerprints}")
    columns = ["listener", "trial", "system", "rating", "simulated"]
    return pandas.DataFrame(rows, columns=columns).sort_values(columns[:3], ignore_index=True)


@dataclass
class Screening:
    """The result of :func:`post_screen`: listeners ``kept`` and ``excluded`` (``{listener: reason}``)."""

    kept: list[str]
    excluded: dict[str, str] = field(default_factory=dict)

    def apply(self, table: "pandas.DataFrame") -> "pandas.DataFrame":
        """The rows of ``table`` whose listener is kept."""
        return table[table["listener"].isin(self.kept)].reset_index(drop=True)


def post_screen(table: "pandas.DataFrame", reference: str = HIDDEN_REFERENCE, anchor: str | None = None,
                threshold: float = 90.0, max_fraction: float = 0.15) -> Screening:
    """Post-screening of assessors as in ITU-R BS.1534-3 (section 4.1.2).

    An assessor is excluded who rates the hidden reference below ``threshold`` (90) for more
    than ``max_fraction`` (15 %) of the test items (trials) they rated. With ``anchor`` given,
    an assessor is also excluded who rates that anchor above ``threshold`` for more than
    ``max_fraction`` of the items (the standard states this rule for the mid-range anchor; here
    it can be applied to the low anchor).

    Args:
        table: ratings as from :func:`load_ratings`.
        reference: the hidden reference's system name.
        anchor: an anchor's system name, or ``None`` to skip the anchor rule.
        threshold: score, 0-100; max_fraction: in [0, 1].

    Returns:
        a :class:`Screening`, reasons naming the rule and the fraction.

    Raises:
        DataError: the table has no ratings of ``reference`` (or of ``anchor``).
    """
    rules = [(reference, "below", lambda r: r < threshold)]
    if anchor is not None:
        rules.append((anchor, "above", lambda r: r > threshold))
    for system, _, _ in rules:
        if not (table["system"] == system).any():
            raise DataError(f"post-screening: no ratings of system {system!r}; systems are "
                            f"{sorted(table['system'].unique())}")
    screening = Screening(kept=[])
    for listener, rows in table.groupby("listener", sort=True):
        reasons = []
        for system, side, bad in rules:
            scores = rows.loc[rows["system"] == system, "rating"]
            fraction = float(np.mean([bad(r) for r in scores])) if len(scores) else 0.0
            if fraction > max_fraction:
                reasons.append(f"rated {system!r} {side} {threshold:g} in {fraction:.0%} of {len(scores)} trials "
                               f"(more than {max_fraction:.0%})")
        if reasons:
            screening.excluded[listener] = "; ".join(reasons)
        else:
            screening.kept.append(listener)
    return screening


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given.

    The i-th smallest of m p-values (i from 1) is multiplied by m - i + 1, capped at 1, and
    made non-decreasing along the sorted order; rejecting where the adjusted value is below
    alpha controls the family-wise error rate at alpha.
    """
    p = np.asarray(p_values, float)
    order = np.argsort(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    out = np.empty_like(p)
    out[order] = adjusted
    return out.tolist()


def wilcoxon_tests(table: "pandas.DataFrame", against: str, systems: Sequence[str] | None = None,
                   alpha: float = 0.05) -> "pandas.DataFrame":
    """Wilcoxon signed-rank tests of each system against ``against``, Holm-corrected.

    Ratings are paired by (listener, trial): for every pair where both systems were rated,
    the difference ``system - against`` enters a two-sided :func:`scipy.stats.wilcoxon` test
    (zero differences dropped, scipy's default ``zero_method="wilcox"``; when every difference
    is zero the systems were rated identically and ``p = 1``). The p-values of all the tests
    are adjusted together with Holm's method (:func:`holm`).

    Args:
        table: ratings as from :func:`load_ratings` (post-screened, usually).
        against: the system every other one is compared with (e.g. ``"deepafx"``).
        systems: the systems to test; default every other system in the table.
        alpha: family-wise significance level for the ``significant`` column.

    Returns:
        a ``pandas.DataFrame``, one row per system: ``system``, ``against``, ``pairs`` (n),
        ``median_difference`` (score points, system minus ``against``), ``statistic``
        (scipy's: the smaller rank sum), ``p_value``, ``p_holm``, ``significant``.

    Raises:
        DataError: ``against`` or a system has no ratings, or no paired ratings.
    """
    import pandas
    from scipy.stats import wilcoxon

    present = sorted(table["system"].unique())
    systems = [s for s in present if s != against] if systems is None else list(systems)
    for system in [against, *systems]:
        if system not in present:
            raise DataError(f"wilcoxon_tests: no ratings of system {system!r}; systems are {present}")
    wide = table.pivot_table(index=["listener", "trial"], columns="system", values="rating", aggfunc="first")
    rows = []
    for system in systems:
        pairs = wide[[system, against]].dropna()
        if pairs.empty:
            raise DataError(f"wilcoxon_tests: {system!r} and {against!r} are never rated in the same trial")
        diff = (pairs[system] - pairs[against]).to_numpy()
        if np.all(diff == 0):
            statistic, p = 0.0, 1.0
        else:
            result = wilcoxon(pairs[system], pairs[against])
            statistic, p = float(result.statistic), float(result.pvalue)
        rows.append({"system": system, "against": against, "pairs": len(pairs),
                     "median_difference": float(np.median(diff)), "statistic": statistic, "p_value": p})
    out = pandas.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"].tolist())
    out["significant"] = out["p_holm"] < alpha
    return out


def beside_virtual(table: "pandas.DataFrame", virtual: Mapping[str, Any]) -> "pandas.DataFrame":
    """Listeners' median ratings beside the virtual listening test's medians, per system.

    Args:
        table: ratings as from :func:`load_ratings` (post-screened, usually), on a stimuli set
            exported with ``protocol="paper"`` (so its systems are the virtual test's conditions).
        virtual: a run's ``paper_comparison["virtual_listening"]`` (:func:`fxlib.comparisons.virtual_listening`).

    Returns:
        a ``pandas.DataFrame``, one row per system of either: ``system``, ``listeners_median``
        (0-100; NaN when not rated), and one column per validated measure with its median in the
        measure's unit (NaN where the measure does not score the system, e.g. an intrusive one
        and the hidden reference).
    """
    import pandas

    human = table.groupby("system")["rating"].median().to_dict()
    systems = list(dict.fromkeys([*virtual["conditions"], *human]))
    rows = []
    for system in systems:
        row = {"system": system, "listeners_median": human.get(system, math.nan)}
        for measure, result in virtual["measures"].items():
            value = result["medians"].get(system)
            row[measure] = math.nan if value is None else value
        rows.append(row)
    return pandas.DataFrame(rows)


def box_plot(table: "pandas.DataFrame", order: Sequence[str] | None = None, title: str | None = None) -> "Figure":
    """Box plots of the ratings per system on the MUSHRA scale.

    Args:
        table: ratings as from :func:`load_ratings`.
        order: the systems left to right; default by median rating, best first.
        title: default names the listener and trial counts (and says when ratings are simulated).

    Returns:
        a ``matplotlib.figure.Figure`` (not registered with pyplot; display or save it).
    """
    from matplotlib.figure import Figure

    if table.empty:
        raise DataError("box_plot: the ratings table is empty")
    if order is None:
        order = table.groupby("system")["rating"].median().sort_values(ascending=False).index.tolist()
    fig = Figure(figsize=(1.2 * len(order) + 2.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.boxplot([table.loc[table["system"] == s, "rating"].to_numpy() for s in order], showmeans=True)
    ax.set_xticks(range(1, len(order) + 1), order, rotation=30, ha="right")
    ax.set_ylim(0, 100)
    ax.set_ylabel("score (MUSHRA, 0-100)")
    for name, low, high in SCALE:
        ax.axhline(low, color="0.85", lw=0.8, zorder=0)
        ax.text(1.01, (low + high) / 2, name, transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    if title is None:
        simulated = " (SIMULATED ratings)" if table["simulated"].any() else ""
        title = f"{table['listener'].nunique()} listeners, {table['trial'].nunique()} trials{simulated}"
    ax.set_title(title)
    return fig


def simulate_ratings(stimuli_dir: str | os.PathLike, ratings_dir: str | os.PathLike, listeners: int = 8,
                     seed: int = 0, qualities: Mapping[str, float] | None = None) -> list[str]:
    """Make clearly labelled simulated ratings, for demos and tests (never for results).

    ``listeners`` simulated listeners ``sim-01``, ``sim-02``, ... rate every trial through a
    :class:`ListeningSession` (files marked ``"simulated": true``): the score of a system is its
    mean quality plus a listener bias (normal, sd 5 points) plus noise (normal, sd 8 points),
    rounded and clipped to 0-100; the hidden reference, unless ``qualities`` names it, is
    recognised: 100 minus a half-normal deviate (sd 3 points). One more listener,
    ``sim-careless``, rates uniformly at random and so fails the post-screening.

    Args:
        stimuli_dir: a stimuli folder.
        ratings_dir: where the ratings files go.
        listeners: the number of attentive simulated listeners (at least 1).
        seed: seeds the sessions and the scores.
        qualities: ``{system: mean score}``, overriding the defaults: the anchor 15 and the
            other systems in manifest order spread evenly from 35 to 80 (a convention for demos,
            later systems better).

    Returns:
        the simulated listener ids, the careless one last.
    """
    if listeners < 1:
        raise SpecError(f"simulate_ratings needs at least one listener, got {listeners}")
    manifest = read_stimuli(stimuli_dir)
    others = [s["system"] for s in manifest["trials"][0]["stimuli"] if s["system"] not in (HIDDEN_REFERENCE, ANCHOR)]
    means = {ANCHOR: 15.0, **dict(zip(others, np.linspace(35, 80, len(others)).tolist())), **(qualities or {})}
    rng = np.random.default_rng(seed)
    ids = [f"{SIMULATED_PREFIX}{k:02d}" for k in range(1, listeners + 1)] + [CARELESS]
    for listener in ids:
        session = ListeningSession(stimuli_dir, listener, ratings_dir, seed, simulated=True)
        bias = rng.normal(0, 5)
        while (trial := session.current) is not None:
            if listener == CARELESS:
                scores = rng.uniform(0, 100, len(trial.stimuli))
            else:
                scores = [means[s.system] + bias + rng.normal(0, 8) if s.system in means
                          else 100 - abs(rng.normal(0, 3)) for s in trial.stimuli]
            session.rate({s.label: float(np.clip(round(v), 0, 100)) for s, v in zip(trial.stimuli, scores)})
    return ids
