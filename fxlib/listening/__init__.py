"""A MUSHRA-style listening test (ITU-R BS.1534-3) in JupyterLab: stimuli, sessions, widget, analysis.

Four parts, each usable alone, one module each (the file formats and names they share are in
:mod:`.formats`):

* **Stimuli** (:mod:`.stimuli`: :func:`export_stimuli`, :func:`demo_stimuli`): per trial an excerpt of a test
  file as the open reference (the target), the same excerpt as the *hidden reference*, a *low
  anchor* (the reference low-passed at 3.5 kHz) and the systems under test, as WAV files and a
  manifest ``stimuli.json``.
* **Session** (:mod:`.session`: :class:`ListeningSession`): one listener's ratings, trials and stimuli in a
  seeded random order, saved after each trial to ``<ratings_dir>/<listener>.json`` and resumed
  at the first unrated trial.
* **Widget** (:mod:`.widget`: :class:`MushraWidget`): ipywidgets players and 0-100 sliders over a session.
* **Analysis** (:mod:`.analysis`: :func:`load_ratings`, :func:`post_screen`, :func:`wilcoxon_tests`,
  :func:`box_plot`, :func:`simulate_ratings`).

Stimuli folder::

    <stimuli_dir>/stimuli.json                the manifest, written last (see below)
    <stimuli_dir>/<trial>/open-reference.wav  the reference the listener may always play
    <stimuli_dir>/<trial>/<system>.wav        one file per stimulus; ``reference.wav`` is the
                                              hidden reference, ``anchor.wav`` the low anchor
    <stimuli_dir>/<trial>/trial.json          the trial's record (lets an interrupted export resume)

``stimuli.json``::

    {"format": 1, "kind": "fxlib-mushra-stimuli", "sample_rate": 22050, "channels": 1,
     "hidden_reference": "reference", "anchor": "anchor", "loudness": "<the rule below>",
     "source": {...what the audio came from...}, "params": {...the export's settings...},
     "fingerprint": "<sha256 of the trials' systems and file digests>",
     "trials": [{"id": "trial00", "reference": "trial00/open-reference.wav", "info": {...},
                 "stimuli": [{"system": "reference", "file": "trial00/reference.wav",
                              "gain_db": 0.0, "sha256": "..."}, ...]}, ...]}

Within a trial a stimulus is identified by its system name. Paths are relative to the
stimuli folder; ``info`` says where the excerpt comes from (pair id, start and length in s).

Loudness rule (every trial): each stimulus is scaled so that its integrated loudness
(ITU-R BS.1770-4, :func:`fxlib.metrics.loudness_lufs`) equals the reference's; a silent
stimulus (below the -70 LUFS gate) keeps its level. Then, if any stimulus would peak above
:data:`.stimuli.PEAK_CEILING_DBTP` (true peak, :func:`fxlib.metrics.true_peak_dbtp`), the whole trial
(the references included) is attenuated by the same amount, so levels stay equal and nothing
clips. Each stimulus's total gain is recorded as ``gain_db``. Every stimulus also gets
:data:`.stimuli.FADE_SECONDS` raised-cosine fades at both ends, so cuts do not click.

Low anchor: BS.1534-3 asks for the reference low-passed at 3.5 kHz (and optionally a mid
anchor at 7 kHz). At the paper's 22.05 kHz the reference holds content up to 11.025 kHz, so
the 3.5 kHz cut-off is kept as it is (it removes the band from 3.5 to 11 kHz rather than to
20 kHz, a milder but still clearly audible degradation); the filter is an 8th-order
Butterworth low-pass applied forward and backward (zero phase, so the anchor stays aligned
with the reference; 16th-order magnitude, -6 dB at 3.5 kHz). Sample rates of 7 kHz or less
are refused. No mid anchor is made.

Ratings file ``<ratings_dir>/<listener>.json``::

    {"format": 1, "kind": "fxlib-mushra-ratings", "listener": "ann", "seed": 0, "simulated": false,
     "fingerprint": "<the stimuli set's>", "stimuli_dir": "...",
     "order": [{"trial": "trial02", "stimuli": ["anchor", "deepafx", ...]}, ...],
     "ratings": {"trial02": {"ratings": {"anchor": 12.0, ...}, "labels": {"A": "anchor", ...},
                             "rated_at": "2025-...Z"}, ...},
     "created": "...", "updated": "..."}

Ratings are scores from 0 to 100 on the MUSHRA scale (0-20 bad, 20-40 poor, 40-60 fair,
60-80 good, 80-100 excellent).
"""
from .analysis import Screening, beside_virtual, box_plot, holm, load_ratings, post_screen, simulate_ratings, wilcoxon_tests
from .formats import ANCHOR, CARELESS, HIDDEN_REFERENCE, SCALE, RatingError, StimuliMismatchError
from .session import ListeningSession, Stimulus, Trial, check_rating
from .stimuli import demo_stimuli, export_stimuli, loudness_gains, low_anchor, read_stimuli
from .widget import MushraWidget

__all__ = ["ANCHOR", "CARELESS", "HIDDEN_REFERENCE", "ListeningSession", "MushraWidget", "RatingError", "SCALE",
           "Screening", "StimuliMismatchError", "beside_virtual", "Stimulus", "Trial", "box_plot", "check_rating", "demo_stimuli",
           "export_stimuli", "holm", "load_ratings", "loudness_gains", "low_anchor", "post_screen", "read_stimuli",
           "simulate_ratings", "wilcoxon_tests"]
