"""The MUSHRA page: ipywidgets players and 0-100 sliders over a :class:`~fxlib.listening.session.ListeningSession`."""
from __future__ import annotations

from pathlib import Path
from typing import Any


from ..data.audio import load_audio, wav_bytes

from .formats import SCALE, RatingError
from .session import ListeningSession, check_rating

LABEL_PX, PLAYER_PX, SLIDER_PX = 90, 300, 560  # widths of the widget's columns, in CSS pixels


class MushraWidget:
    """A MUSHRA page for a :class:`ListeningSession`, built from ipywidgets.

    One row per stimulus (blind label, a play control, a 0-100 slider under the MUSHRA scale
    bad/poor/fair/good/excellent), the open reference's player on top, and a *Next* button
    that validates, saves the trial and shows the next. A slider the listener has not moved
    counts as unrated (to rate 0, move it and back). Display it as the last expression of a
    cell; :meth:`set_rating` and :meth:`submit` drive it without a browser.

    Attributes:
        box: the top-level ``ipywidgets.VBox``; sliders: ``{label: IntSlider}`` of the current
        trial; status: an ``HTML`` line showing errors and progress.
    """

    def __init__(self, session: ListeningSession) -> None:
        import ipywidgets

        self.session = session
        self._w = ipywidgets
        self.title = ipywidgets.HTML()
        self.status = ipywidgets.HTML()
        self.rows = ipywidgets.VBox()
        self.next_button = ipywidgets.Button(description="Next", button_style="primary",
                                             tooltip="save these ratings and go to the next trial")
        self.next_button.on_click(lambda _: self.submit())
        self.box = ipywidgets.VBox([self.title, self.rows, self.next_button, self.status])
        self.sliders: dict[str, Any] = {}
        self._touched: set[str] = set()
        self._show()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.box._repr_mimebundle_(**kwargs)

    def _scale_header(self) -> Any:
        w = self._w
        cells = [w.HTML(f"<center>{name}</center>", layout=w.Layout(width="20%")) for name, _, _ in reversed(SCALE)]
        return w.HBox([w.HTML("", layout=w.Layout(width=f"{LABEL_PX + PLAYER_PX}px")),
                       w.HBox(cells, layout=w.Layout(width=f"{SLIDER_PX}px"))])

    def _player(self, path: Path) -> Any:
        audio, rate = load_audio(path)
        return self._w.Audio(value=wav_bytes(audio, rate), format="wav", autoplay=False, loop=False,
                             layout=self._w.Layout(width=f"{PLAYER_PX}px"))

    def _show(self) -> None:
        """Lay out the session's current trial (or the end page)."""
        w = self._w
        trial = self.session.current
        self.sliders, self._touched = {}, set()
        if trial is None:
            self.title.value = (f"<h3>All {self.session.total} trials are rated: thank you.</h3>"
                                f"Saved in <code>{self.session.path}</code>.")
            self.rows.children = ()
            self.next_button.disabled = True
            return
        self.title.value = (f"<h3>Trial {trial.number} of {trial.total}</h3>Play the reference and every "
                            "stimulus, then rate how each compares with the reference (one of them is the "
                            "reference itself).")
        label = w.Layout(width=f"{LABEL_PX}px")
        rows = [self._scale_header(), w.HBox([w.HTML("<b>Reference</b>", layout=label), self._player(trial.reference)])]
        for stimulus in trial.stimuli:
            slider = w.IntSlider(value=0, min=0, max=100, step=1, layout=w.Layout(width=f"{SLIDER_PX}px"),
                                 tooltip=f"score of stimulus {stimulus.label}, 0-100")
            slider.observe(lambda change, label=stimulus.label: self._touched.add(label), names="value")
            self.sliders[stimulus.label] = slider
            rows.append(w.HBox([w.HTML(f"<b>{stimulus.label}</b>", layout=label),
                                self._player(stimulus.path), slider]))
        self.rows.children = tuple(rows)
        self.next_button.disabled = False

    def set_rating(self, label: str, value: float) -> None:
        """Set stimulus ``label``'s slider to ``value`` (0-100, rounded), as if the listener moved it.

        Raises:
            RatingError: no such stimulus in this trial, or a value that is not a score.
        """
        trial = self.session.current
        if trial is None or label not in self.sliders:
            raise RatingError(f"no stimulus {label!r} in the current trial"
                              + (f" (stimuli: {', '.join(self.sliders)})" if self.sliders else ""))
        self.sliders[label].value = round(check_rating(value, label, trial.id))
        self._touched.add(label)

    def submit(self) -> bool:
        """What *Next* does: rate the session's trial from the sliders and show the next one.

        Returns:
            ``True`` when saved; ``False`` with the error in :attr:`status` when a rating is
            missing (a slider not moved) or the session is already finished.
        """
        ratings = {label: (s.value if label in self._touched else None) for label, s in self.sliders.items()}
        try:
            self.session.rate(ratings)
        except RatingError as e:
            self.status.value = f"<span style='color:#b00'>{e}</span>"
            return False
        self.status.value = f"Saved trial {self.session.rated} of {self.session.total}."
        self._show()
        return True

