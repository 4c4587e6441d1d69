"""The DeepAFx model: an encoder that predicts an effect chain's parameters from audio.

Training renders the chain through :class:`~fxlib.layer.BlackBoxFx` (see :mod:`fxlib.train`);
this module holds the model's configuration (the chain spec, the encoder config, the inference
mode: :meth:`DeepAFx.config`, plain data that a run folder stores as JSON, :mod:`fxlib.rundir`)
and inference on whole files: one parameter vector per hop, predicted from the context window
centred on that hop (``"hop"``, the paper's time-varying parameters) or their mean over the file
(``"song"``, :data:`~fxlib.framing.INFERENCE`), the chain streaming through the file so its state
carries across hops, the chain's latency compensated, and an optional gain after the chain
(``trim_db``, a calibration measured after training, :mod:`fxlib.calibrate`).

A model also saves alone (:meth:`DeepAFx.save`, :meth:`DeepAFx.load`: its config, encoder
weights and output gain, tensors and plain data only). The models shipped with fxlib are saved
this way in ``fxlib/models/<name>/model.pt`` (:meth:`DeepAFx.pretrained`), each beside the
``record.json`` of the run that trained it (:meth:`fxlib.rundir.RunDir.export_model`).
"""
from __future__ import annotations

import csv
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .atomic import atomic_output
from .chain import FxChain
from .encoder import Encoder
from .errors import AudioFormatError, SpecError
from .framing import INFERENCE, context_lead, window
from .hosts import check_audio

#: Where the shipped models live: ``<name>/model.pt`` and ``<name>/record.json``.
MODELS_DIR = Path(__file__).parent / "models"
#: The layout of a saved model (:meth:`DeepAFx.save`); a file of another one is refused.
MODEL_FORMAT = 1


class DeepAFx(nn.Module):
    """Encoder + the plain-data spec of the chain it controls.

    Args:
        chain_spec: the :class:`~fxlib.chain.FxChain` spec (dict).
        encoder_config: :meth:`Encoder.to_config` without ``num_params`` (taken from the chain).
        context: encoder input length in samples; frame: samples per parameter vector (hop).
        inference: ``"hop"`` or ``"song"`` (:data:`INFERENCE`), how :meth:`process` sets the chain.
        trim_db: a gain after the chain, in dB, applied by :meth:`render` and :meth:`process`:
            a level trim measured after training (:func:`fxlib.calibrate.level_trim`); not part of
            :meth:`config`, since a calibration is stored apart from the model.

    Attributes:
        names: the learned parameters ``"<effect>.<param>"``; effect_sizes: learned count per effect.
        default_unit: ``(P,)`` the chain's default parameter vector in [0, 1].
    """

    def __init__(self, chain_spec: Mapping, encoder_config: Mapping, context: int, frame: int,
                 inference: str = "hop", trim_db: float = 0.0) -> None:
        super().__init__()
        if not 0 < frame <= context:
            raise SpecError(f"frame ({frame}) must be positive and at most the context ({context})")
        if inference not in INFERENCE:
            raise SpecError(f"inference must be one of {', '.join(map(repr, INFERENCE))}, got {inference!r}")
        if not np.isfinite(trim_db):
            raise SpecError(f"trim_db must be a finite gain in dB, got {trim_db}")
        self.inference = inference
        self.trim_db = float(trim_db)
        self.chain_spec = dict(chain_spec)
        self.context, self.frame = int(context), int(frame)
        with FxChain.from_spec(self.chain_spec) as chain:
            self.names = list(chain.names)
            self.effect_sizes = [sum(p.owner == s.name for p in chain.params) for s in chain.stages]
            self.default_unit = torch.tensor(chain.default_unit(), dtype=torch.float32)
            self.sample_rate, self.channels = chain.sample_rate, chain.channels
        self.encoder_config = {k: v for k, v in dict(encoder_config).items() if k != "num_params"}
        self.encoder = Encoder.from_config({**self.encoder_config, "num_params": len(self.names)})

    @property
    def num_params(self) -> int:
        """P, the number of learned parameters."""
        return len(self.names)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """Predict parameters.

        Shape:
            context ``(B, C, context)`` audio -> ``(B, P)`` in (0, 1).
        """
        return self.encoder(context)

    def config(self) -> dict[str, Any]:
        """What :meth:`from_config` needs: plain data (a run folder stores it in ``run.json``)."""
        return {"chain_spec": self.chain_spec, "encoder_config": self.encoder_config,
                "context": self.context, "frame": self.frame, "inference": self.inference}

    @classmethod
    def from_config(cls, config: Mapping, trim_db: float = 0.0) -> "DeepAFx":
        """The (untrained) model a :meth:`config` describes, with an output gain of ``trim_db`` dB.

        Raises:
            SpecError: a key is missing or a value is out of range.
        """
        missing = {"chain_spec", "encoder_config", "context", "frame", "inference"} - set(config)
        if missing:
            raise SpecError(f"model config lacks {', '.join(sorted(missing))}")
        return cls(config["chain_spec"], config["encoder_config"], config["context"], config["frame"],
                   config["inference"], trim_db)

    # -- saved models ----------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the model alone to ``path`` (atomically): config, encoder weights and ``trim_db``,
        tensors and plain data only, so that :meth:`load` reads it with ``weights_only=True``."""
        with atomic_output(path) as tmp, open(tmp, "wb") as f:  # a file object: the same bytes for the same model
            torch.save({"format": MODEL_FORMAT, "config": self.config(), "trim_db": self.trim_db,
                        "encoder": self.encoder.state_dict()}, f)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DeepAFx":
        """The model :meth:`save` wrote to ``path``, on the CPU, in eval mode.

        Raises:
            FileNotFoundError: no file at ``path``.
            SpecError: the file is not a saved model of this format (cut short, another kind of
                checkpoint, or objects other than tensors and plain data, which are not unpickled).
        """
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
            raise SpecError(f"{path} is not a readable fxlib model (cut short, or holding objects other than "
                            f"tensors and plain data): {str(e).splitlines()[0]}") from e
        if not isinstance(state, dict) or state.get("format") != MODEL_FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise SpecError(f"{path} is not an fxlib model of format {MODEL_FORMAT} (found {found!r}); "
                            "a run folder's checkpoint loads through fxlib.rundir.RunDir(folder).model()")
        model = cls.from_config(state["config"], state["trim_db"])
        model.encoder.load_state_dict(state["encoder"])
        return model.eval()

    @classmethod
    def pretrained(cls, name: str) -> "DeepAFx":
        """A model shipped with fxlib, by name (:func:`pretrained_names`), such as ``"amp"``.

        Its chain's plugins must be installed (``"amp-builtin"`` needs only pedalboard).

        Raises:
            SpecError: no shipped model has that name.
        """
        names = pretrained_names()
        if name not in names:
            raise SpecError(f"no shipped model named {name!r}; shipped: {', '.join(names) or 'none'}")
        return cls.load(MODELS_DIR / name / "model.pt")

    # -- inference on whole files -------------------------------------------------------
    def contexts(self, audio: np.ndarray) -> np.ndarray:
        """The context window centred on each hop of ``audio``.

        Shape:
            audio ``(C, T)`` -> ``(N, C, context)`` with N = ceil(T / frame); zero-padded at the edges.
        """
        n = -(-audio.shape[1] // self.frame)
        left = context_lead(self.context, self.frame)
        return np.stack([window(audio, i * self.frame - left, self.context) for i in range(n)])

    @torch.no_grad()
    def predict(self, audio: np.ndarray, batch_size: int = 4) -> np.ndarray:
        """One parameter vector per hop: ``(C, T)`` audio -> ``(N, P)`` in [0, 1].

        The same as the encoder on each of :meth:`contexts`, within float rounding, but the
        contexts of neighbouring hops overlap by all but ``frame`` samples, so their log-mel is
        computed once over the file (:meth:`~fxlib.encoder.LogMel.sliding`), and the encoder runs
        from there on batches of ``batch_size`` hops (small batches keep the feature maps in the
        CPU's cache), as its inference copy (:meth:`~fxlib.encoder.Encoder.for_inference`:
        BatchNorm folded, channels-last).
        """
        check_audio(audio, "DeepAFx.predict", (self.channels,))
        device = next(self.encoder.parameters()).device
        n = -(-audio.shape[1] // self.frame)
        encoder = self.encoder.for_inference()
        mels = encoder.logmel.sliding(torch.from_numpy(audio).to(device), -context_lead(self.context, self.frame),
                                      self.frame, self.context, n, batch_size)
        return torch.cat([encoder.from_logmel(mel.contiguous(memory_format=torch.channels_last)).cpu()
                          for mel in mels]).double().numpy()

    def process(self, audio: np.ndarray, batch_size: int = 4) -> tuple[np.ndarray, np.ndarray]:
        """Process a whole file: per-hop parameters, or their mean over the file (``self.inference``).

        Args:
            audio: float32 ``(C, T)`` at the chain's sample rate.

        Returns:
            ``(output (C, T) float32, params (N, P) in [0, 1])``: the output aligned with the
            input, and the parameter vector the chain ran with at each hop (``"song"``: N equal rows).
        """
        u = self.predict(audio, batch_size)
        if self.inference == "song":
            u = np.repeat(u.mean(axis=0, keepdims=True), len(u), axis=0)
        return self.render(audio, u), u

    def render(self, audio: np.ndarray, u: np.ndarray) -> np.ndarray:
        """The chain at parameters ``u`` (``(N, P)``, one row per hop, or ``(P,)``), then the level trim.

        Shape:
            audio ``(C, T)`` -> ``(C, T)`` float32 (see :func:`render_curve`).
        """
        return render_curve(self.chain_spec, audio, u, self.frame, self.trim_db)

    def write_curves(self, u: np.ndarray, path: str | os.PathLike) -> None:
        """Write the parameter curves as CSV: time (s) of each hop's centre, then native values."""
        write_curves_csv(self.chain_spec, u, self.frame, path)


def pretrained_names() -> list[str]:
    """The names of the models shipped in :data:`MODELS_DIR`, sorted."""
    return sorted(p.parent.name for p in MODELS_DIR.glob("*/model.pt"))


def curve_ranges(names: Sequence[str], patterns: Mapping[str, int]) -> list[list[int]]:
    r"""The :class:`~fxlib.encoder.Encoder`'s ``curves`` for learned parameters named ``names``.

    Args:
        names: the chain's learned parameters, ``"<effect>.<param>"``, in order.
        patterns: ``{regular expression: knots}``; the names a pattern matches in full form one
            curve, and must be consecutive (for example ``{r"geq\.g_\d+": 6}``: the 32 band
            gains of the LSP graphic EQ, 6 knots two octaves apart). A task's patterns may name
            the curves of several chains: a pattern that matches no name of this chain is left
            out, with a warning.

    Returns:
        ``[[start, stop, knots], ...]``.

    Raises:
        SpecError: a pattern matches names that are not consecutive, or fewer names than knots.
    """
    ranges = []
    for pattern, knots in patterns.items():
        hits = [i for i, name in enumerate(names) if re.fullmatch(pattern, name)]
        if not hits:
            warnings.warn(f"curve pattern {pattern!r} matches no learned parameter of this chain; "
                          "its parameters are predicted one by one", stacklevel=2)
            continue
        if hits != list(range(hits[0], hits[-1] + 1)) or len(hits) < knots:
            raise SpecError(f"curve pattern {pattern!r} must match at least {knots} consecutive parameters; "
                            f"it matches {', '.join(names[i] for i in hits)}")
        ranges.append([hits[0], hits[-1] + 1, int(knots)])
    return ranges


def render_curve(chain_spec: Mapping, audio: np.ndarray, u: np.ndarray, frame: int,
                 gain_db: float = 0.0) -> np.ndarray:
    """Stream ``audio`` through a fresh chain with one parameter vector per hop of ``frame`` samples.

    Args:
        audio: float32 ``(C, T)``; u: ``(N, P)`` (or ``(P,)`` for constant parameters).
        gain_db: a gain applied to the chain's output, in dB (a trained system's level trim).

    Returns:
        float32 ``(C, T)``, the chain's latency compensated (the tail is flushed with zeros).
    """
    u = np.atleast_2d(u)
    n = -(-audio.shape[1] // frame)
    if len(u) == 1:
        u = np.repeat(u, n, axis=0)
    if len(u) != n:
        raise AudioFormatError(f"{n} hops of {frame} samples need {n} parameter vectors, got {len(u)}")
    with FxChain.from_spec(chain_spec) as chain:
        chain.reset()
        total = n * frame + chain.latency
        padded = np.pad(audio, ((0, 0), (0, total - audio.shape[1])))
        native = chain.native_rows(u)  # every hop's parameters mapped at once
        blocks = [chain.stream(padded[:, i * frame:(i + 1) * frame], native=native[i]) for i in range(n)]
        if chain.latency:
            blocks.append(chain.stream(padded[:, n * frame:], native=native[-1]))
        out = np.concatenate(blocks, axis=1)[:, chain.latency:chain.latency + audio.shape[1]]
    if gain_db:
        out = out * np.float32(10 ** (gain_db / 20))
    return np.ascontiguousarray(out, dtype=np.float32)


def write_curves_csv(chain_spec: Mapping, u: np.ndarray, frame: int, path: str | os.PathLike) -> None:
    """Parameter curves ``(N, P)`` as CSV of native values, written atomically."""
    with FxChain.from_spec(chain_spec) as chain, atomic_output(path) as tmp:
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["time_s"] + chain.names)
            for i, row in enumerate(np.atleast_2d(u)):
                native = chain.to_native(row)
                writer.writerow([f"{(i + 0.5) * frame / chain.sample_rate:.4f}"] +
                                [v if isinstance(v, str) else f"{float(v):.6g}" for v in native.values()])
