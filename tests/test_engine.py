"""The worker pool: determinism across workers, streaming state, crashes, hangs and cleanup."""
from __future__ import annotations

import gc
import multiprocessing as mp
import os
import signal
import warnings

import fx_crashy
import numpy as np
import pytest
import torch

from fxlib import FxChain
from fxlib import reference_fx as ref
from fxlib.engine import Engine, EngineError, _Pool
from fxlib.errors import AudioFormatError
from fxlib.layer import BlackBoxFx

BUILTIN_CHAIN = {"name": "comp-lp", "sample_rate": 22050, "channels": 1, "effects": [
    {"kind": "builtin", "id": "Compressor", "learn": ["threshold_db", "ratio"], "fixed": {"attack_ms": 5.0}},
    {"kind": "builtin", "id": "LowpassFilter", "learn": ["cutoff_frequency_hz"]}]}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def noise(batch: int, samples: int, seed: int = 0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal((batch, 1, samples))).astype(np.float32)


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def gradients(layer: BlackBoxFx, audio: np.ndarray, params: np.ndarray, frames: int = 1):
    """Outputs and gradients of ``frames`` consecutive calls (frames split the audio)."""
    results = []
    for frame in np.split(audio, frames, axis=-1):
        a = torch.from_numpy(frame).requires_grad_()
        p = torch.from_numpy(params).float().requires_grad_()
        out = layer(a, p)
        (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
        results += [out.detach(), a.grad, p.grad]
    return results


# -- results do not depend on the workers ---------------------------------------------------
@pytest.mark.parametrize("spec, mode", [(ref.chain_spec(), "clip"), (BUILTIN_CHAIN, "clip"),
                                        (BUILTIN_CHAIN, "stream")])
def test_the_number_of_workers_does_not_change_results(spec, mode):
    audio = noise(5, 1024)
    params = np.random.default_rng(1).uniform(size=(5, 3))
    runs = []
    for workers in (1, 2):
        with BlackBoxFx(spec, workers=workers, mode=mode, draws=3, input_grad="spsa", seed=5) as fx:
            assert fx.engine.inline == (workers == 1)
            runs.append(gradients(fx, audio, params, frames=2 if mode == "stream" else 1))
    for inline, pooled in zip(*runs):
        assert torch.equal(inline, pooled)



def test_clip_renders_equal_the_chains_own_process_with_latency_and_preroll():
    delay = {"kind": "python", "id": "fx_user:DelayLine", "fixed": {"samples": 300},
             "params": [{"name": "samples", "low": 0, "high": 1000, "default": 0}]}
    spec = {"sample_rate": 22050, "channels": 1, "effects": [
        delay, {"kind": "builtin", "id": "Compressor", "learn": ["threshold_db", "ratio"]}]}
    audio, params = noise(3, 2048), np.random.default_rng(3).uniform(size=(4, 2))
    source = np.array([0, 2, 2, 1])
    with Engine(spec, workers=2, preroll=100) as engine, FxChain.from_spec(spec) as chain:
        assert chain.latency == 300
        out = engine.render(audio, params, source)
        expected = np.stack([chain.process(audio[s], u, preroll=100) for s, u in zip(source, params)])
    assert out.shape == (4, 1, 1948) and np.array_equal(out, expected)

# -- streaming ----------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [ref.chain_spec(), BUILTIN_CHAIN])
def test_stream_frames_equal_one_call_over_the_concatenated_audio(spec):
    audio = torch.from_numpy(noise(3, 4096))
    params = torch.rand(3, 3, generator=torch.Generator().manual_seed(2))
    with BlackBoxFx(spec, workers=2, mode="stream", draws=2) as fx:
        frames = [fx(frame, params) for frame in audio.split(1024, dim=-1)]
        fx.reset()
        whole = fx(audio, params)
        assert torch.equal(torch.cat(frames, -1), whole)
        fx.reset([1])  # a new stream in slot 1 only
        again = fx(audio[:, :, :1024], params)
    assert torch.equal(again[1], frames[0][1])
    assert not torch.equal(again[0], frames[0][0])


def test_a_stream_step_is_one_message_per_worker_and_resets_travel_with_it(monkeypatch):
    sent = []
    real_send = _Pool.send

    def send(pool, messages):
        sent.append(dict(messages))
        return real_send(pool, messages)
    monkeypatch.setattr(_Pool, "send", send)
    audio, keys = noise(4, 512), np.arange(4)
    params = np.random.default_rng(3).uniform(size=(4, 3))
    with Engine(BUILTIN_CHAIN, workers=2, mode="stream") as engine:
        first = engine.render(audio, params, keys=keys)
        engine.render(audio, params, keys=keys)
        sent.clear()
        engine.reset([1, 2])  # nothing is sent now ...
        assert sent == []
        again = engine.render(audio, params, keys=keys)
    assert len(sent) == 1 and sorted(sent[0]) == [0, 1]  # ... it travels with the next step's one message each
    assert [message[-1] for _, message in sorted(sent[0].items())] == [[1], [2]]
    np.testing.assert_array_equal(again[1:3], first[1:3])  # the reset streams start afresh
    assert not np.array_equal(again[0], first[0]) and not np.array_equal(again[3], first[3])


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stream_jobs_second_part_is_rendered_before_the_next_job(workers):
    audio, keys = noise(4, 512), np.arange(4)
    params = np.random.default_rng(4).uniform(size=(4, 3))
    with Engine(BUILTIN_CHAIN, workers=workers, mode="stream") as whole, \
            Engine(BUILTIN_CHAIN, workers=workers, mode="stream") as parts:
        expected = [whole.render(audio, params, keys=keys) for _ in range(3)]
        job = parts.submit(audio, params, keys=keys, first=2)
        np.testing.assert_array_equal(job.first(), expected[0][:2])  # the first part alone, at once
        parts.submit(audio, params, keys=keys, first=2)  # renders 2 and 3 of the first job come first
        parts.reset([0])
        again = parts.render(audio, params, keys=keys)
    np.testing.assert_array_equal(job.result(), expected[0])
    np.testing.assert_array_equal(again[1:], expected[2][1:])  # three frames in order for the streams kept
    np.testing.assert_array_equal(again[0], expected[0][0])  # and a fresh one for the stream reset


@pytest.mark.parametrize("workers", [1, 2])
def test_consume_reads_the_outputs_where_they_are_once(workers, monkeypatch):
    from fxlib.engine import _PoolJob
    copies = []
    read = _PoolJob._read
    monkeypatch.setattr(_PoolJob, "_read", lambda job, n: copies.append(n) or read(job, n))
    audio, params = noise(4, 256), np.random.default_rng(5).uniform(size=(4, 3))
    with Engine(BUILTIN_CHAIN, workers=workers) as engine:
        expected = engine.render(audio, params)
        copies.clear()
        job = engine.submit(audio, params)
        with job.consume() as out:
            np.testing.assert_array_equal(out, expected)
            assert workers == 1 or not out.flags.owndata  # a view of the shared segment
        if workers == 2:
            with pytest.raises(EngineError, match="consumed"):
                job.result()
        np.testing.assert_array_equal(engine.render(audio, params), expected)  # the next job is not held up
        assert copies == ([None] if workers == 2 else [])  # only the last render's result() copied
        kept = engine.submit(audio, params)
        engine.render(audio[:1], params[:1])  # needs the segment: the unconsumed outputs are copied first
        with kept.consume() as out:
            np.testing.assert_array_equal(out, expected)


def test_an_error_in_a_second_part_nobody_asked_for_is_raised_by_the_next_job():
    with Engine(fx_crashy.spec("abort_above"), workers=2, mode="stream") as engine:
        audio, keys = noise(2, 64), np.arange(2)
        engine.submit(audio, np.array([[0.5, 0.1], [0.5, 0.9]]), keys=keys, first=1).first()
        with pytest.raises(EngineError, match="SIGABRT"):
            engine.render(audio, np.array([[0.5, 0.1], [0.5, 0.1]]), keys=keys)
        assert engine.render(audio, np.array([[0.5, 0.1], [0.5, 0.1]]), keys=keys).shape == (2, 1, 64)


def test_stream_perturbed_instances_advance_every_frame():
    """The +/- instances render every frame, so with eps -> 0 they track the nominal stream."""
    audio = torch.from_numpy(noise(2, 2048))
    params = torch.full((2, 3), 0.5)
    with BlackBoxFx(ref.chain_spec(), workers=1, mode="stream", draws=1, epsilon=1e-6) as fx:
        for frame in audio.split(512, dim=-1):
            p = params.clone().requires_grad_()
            fx(frame, p).sum().backward()
        with torch.no_grad():
            fx(audio[:, :, :512], params)  # no gradient: the pairs advance at the nominal point
        keys = np.arange(2 * fx.renders_per_item)
        states = fx.engine._backend.renderer.chains
        last = [states[int(k)].effect("lowpass")._fn._last for k in keys]
    assert np.allclose(last[0], last[1], atol=1e-5) and np.allclose(last[0], last[2], atol=1e-5)


# -- failures -----------------------------------------------------------------------------------
def test_a_crashing_plugin_is_named_and_the_pool_recovers():
    with BlackBoxFx(fx_crashy.spec("abort_above"), workers=2) as fx:
        audio = torch.from_numpy(noise(2, 256))
        fx(audio, torch.tensor([[0.5, 0.1], [0.5, 0.2]]))
        before = fx.engine.worker_pids
        with pytest.raises(EngineError) as caught:
            fx(audio, torch.tensor([[0.5, 0.1], [0.5, 0.9]]))
        message = str(caught.value)
        for part in ("SIGABRT", "crashy (python fx_crashy:abort_above)", "batch item 1, nominal",
                     "crashy.level = 0.9", "gain.gain_db = 0 dB", "restarted"):
            assert part in message, message
        after = fx.engine.worker_pids
        assert after[0] == before[0] and after[1] != before[1] and not running(before[1])
        out = fx(audio, torch.tensor([[0.5, 0.1], [0.5, 0.2]]))
        assert torch.allclose(out, audio, atol=1e-6)


def test_a_crash_in_the_perturbed_renders_is_reported_by_backward():
    with BlackBoxFx(fx_crashy.spec("abort_above"), workers=2, epsilon=0.2) as fx:
        audio = torch.from_numpy(noise(2, 256))
        params = torch.tensor([[0.5, 0.1], [0.5, 0.4]], requires_grad=True)
        out = fx(audio, params)  # nominal renders are fine; level 0.4 + 0.2 crashes a + render
        with pytest.raises(EngineError, match=r"SIGABRT.*batch item 1, [+-] parameter perturbation of draw 0"):
            out.sum().backward()
        assert torch.allclose(fx(audio, torch.tensor([[0.5, 0.1], [0.5, 0.1]])), audio, atol=1e-6)


def test_two_forward_passes_then_one_backward_pass():
    """A second job waits for the first one's perturbed renders and keeps them for its backward."""
    audio, params = torch.from_numpy(noise(6, 512)), torch.rand(6, 2, generator=torch.Generator().manual_seed(3))
    grads = []
    for together in (True, False):
        with BlackBoxFx(ref.chain_spec(("gain", "soft_clip")), workers=2, draws=2, seed=9) as fx:
            p = params.clone().requires_grad_()
            first = fx(audio[:3], p[:3]).square().sum()
            if not together:
                first.backward()
            second = fx(audio[3:], p[3:]).square().sum()
            (first + second if together else second).backward()
            grads.append(p.grad)
    assert torch.equal(grads[0], grads[1])


def test_a_crash_is_retried_once_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv(fx_crashy.CRASH_ONCE_ENV, str(tmp_path / "crashed"))
    with Engine(fx_crashy.spec("abort_once"), workers=2, retries=1) as engine:
        audio = noise(4, 256)
        params = np.array([[0.5, 0.1]] * 3 + [[0.5, 0.9]])
        out = engine.render(audio, params)
    assert (tmp_path / "crashed").exists()
    assert np.array_equal(out, audio)


def test_a_hanging_plugin_times_out_and_the_pool_recovers():
    with Engine(fx_crashy.spec("hang_above"), workers=2, timeout=1.0) as engine:
        audio = noise(2, 128)
        with pytest.raises(EngineError, match=r"did not finish a render within the 1 s timeout.*crashy.level = 0.8"):
            engine.render(audio, np.array([[0.5, 0.8], [0.5, 0.1]]))
        assert np.array_equal(engine.render(audio, np.array([[0.5, 0.1], [0.5, 0.1]])), audio)


@pytest.mark.parametrize("workers, mode", [(2, "clip"), (1, "clip"), (2, "stream"), (1, "stream")])
def test_python_errors_in_workers_keep_their_type(workers, mode):
    keys = np.arange(2) if mode == "stream" else None
    with Engine(ref.chain_spec(), workers=workers, mode=mode) as engine:
        audio = noise(2, 64)
        audio[1, 0, 3] = np.nan
        with pytest.raises(AudioFormatError, match=r"input row 1\): audio holds NaN or Inf \(first at channel 0, sample 3"):
            engine.render(audio, np.full((2, 3), 0.5), keys=keys)
        assert engine.render(noise(2, 64), np.full((2, 3), 0.5), keys=keys).shape == (2, 1, 64)


def test_keyboard_interrupt_kills_busy_workers_and_the_pool_recovers():
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with Engine(fx_crashy.spec("hang_above"), workers=2, timeout=60.0) as engine:
            engine.render(noise(2, 64), np.full((2, 2), 0.1))
            before = engine.worker_pids
            signal.setitimer(signal.ITIMER_REAL, 0.5)
            with pytest.raises(KeyboardInterrupt):
                engine.render(noise(2, 64), np.array([[0.5, 0.9], [0.5, 0.1]]))
            assert not running(before[0]) and running(before[1])  # the busy one was killed, the idle one kept
            assert engine.render(noise(2, 64), np.full((2, 2), 0.1)).shape == (2, 1, 64)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- no process left behind ---------------------------------------------------------------------
def test_worker_pids_name_the_running_workers_and_none_inline_or_closed():
    with Engine(ref.chain_spec(("gain",)), workers=1) as inline:
        assert inline.worker_pids == []
    engine = Engine(ref.chain_spec(("gain",)), workers=2)
    pids = engine.worker_pids
    assert len(set(pids)) == 2 and os.getpid() not in pids and all(running(pid) for pid in pids)
    engine.close()
    assert engine.worker_pids == []


def test_no_worker_outlives_close_an_exception_or_garbage_collection():
    engine = Engine(ref.chain_spec(("gain",)), workers=2)
    engine.render(noise(2, 64), np.full((2, 1), 0.5))
    pids = engine.worker_pids
    engine.close()
    engine.close()
    assert not any(running(pid) for pid in pids)
    with pytest.raises(EngineError, match="closed"):
        engine.render(noise(2, 64), np.full((2, 1), 0.5))

    with pytest.raises(RuntimeError, match="on purpose"):
        with Engine(ref.chain_spec(("gain",)), workers=2) as engine:
            pids = engine.worker_pids
            raise RuntimeError("on purpose")
    assert not any(running(pid) for pid in pids)

    layer = BlackBoxFx(ref.chain_spec(("gain",)), workers=2)
    pids = layer.engine.worker_pids
    out = layer(torch.from_numpy(noise(2, 64)), torch.full((2, 1), 0.5, requires_grad=True))
    del layer, out  # with its perturbed renders still in flight
    gc.collect()
    assert not any(running(pid) for pid in pids)
    assert not mp.active_children()


# -- inside a DataLoader worker -----------------------------------------------------------------
class _RenderInWorker(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Engine(ref.chain_spec(("gain",)), workers=2) as engine:
                out = engine.render(np.ones((1, 1, 8), np.float32), np.full((1, 1), 0.75))
                return out, engine.inline, [str(w.message) for w in caught], mp.current_process().daemon


def test_inside_a_dataloader_worker_the_engine_renders_inline():
    loader = torch.utils.data.DataLoader(_RenderInWorker(), batch_size=None, num_workers=1,
                                         multiprocessing_context="fork")
    out, inline, messages, daemon = next(iter(loader))
    assert daemon and inline
    assert any("daemonic" in m for m in messages)
    assert np.allclose(np.asarray(out), 10 ** (12 / 20), rtol=1e-6)


def test_the_workers_start_with_one_thread_each():
    ours = os.environ.get("OMP_NUM_THREADS")
    with Engine(ref.chain_spec(("gain",)), workers=2) as engine:
        engine.render(noise(2, 64), np.full((2, 1), 0.5))
        with open(f"/proc/{engine.worker_pids[0]}/environ", "rb") as f:
            environ = f.read().split(b"\0")
    assert b"OMP_NUM_THREADS=1" in environ
    assert os.environ.get("OMP_NUM_THREADS") == ours
