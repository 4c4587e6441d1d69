"""The paper's LV2 chains are the released configurations, read port by port from the installed plugins.

The original configurations (adobe-research/DeepAFx, ``config_distortion.py``, ``config_nonspeech.py``,
``config_mastering.py``) name controls by LV2 port index. This test reads each index's symbol
from the installed plugin (``lv2info``, lilv's own report) and checks that the preset chains learn
exactly those symbols, in that order, over the released ranges, and pin the released ports. Where
a chain departs from a released pin, the departure is listed in :data:`DEPARTURES`, as its TOML
file explains it; an undeclared difference fails.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from fxlib.presets import chain_spec, load_chain

COMPRESSOR = "http://calf.sourceforge.net/plugins/MultibandCompressor"
GATE = "http://calf.sourceforge.net/plugins/MultibandGate"
GEQ = "http://lsp-plug.in/plugins/lv2/graph_equalizer_x32_mono"
LIMITER = "http://lsp-plug.in/plugins/lv2/limiter_mono"

#: ``(chain, effect name, plugin, learned ports, pinned {port: value}, ranges {port: (low, high)})``
#: as released; the compressor and gate pin each band's bypass off and its attack and release at
#: 0.01 ms.
RELEASED = [
    ("amp-lv2", "mbc", COMPRESSOR, [19, 20, 23, 24, 30, 31, 34, 35, 41, 42, 45, 46, 52, 53, 56, 57, 15, 16, 17, 5, 6],
     {28: 0, 39: 0, 50: 0, 61: 0, 21: 0.01, 22: 0.01, 32: 0.01, 33: 0.01, 43: 0.01, 44: 0.01, 54: 0.01, 55: 0.01},
     {15: (10, 400), 16: (300, 3000), 17: (3000, 8000), 5: (0.015625, 2), 6: (0.015625, 2)}),
    ("breath-lv2", "gate", GATE, [19, 20, 21, 31, 32, 33, 43, 44, 45, 55, 56, 57, 15, 16, 17, 5, 6],
     {29: 0, 41: 0, 53: 0, 65: 0, 22: 0.01, 23: 0.01, 34: 0.01, 35: 0.01, 46: 0.01, 47: 0.01, 58: 0.01, 59: 0.01},
     {15: (10, 300), 16: (300, 3000), 17: (3000, 10000), 5: (0.015625, 2), 6: (0.015625, 2)}),
    ("mastering-lv2", "mbc", COMPRESSOR, [19, 20, 23, 30, 31, 34, 41, 42, 45, 52, 53, 56, 15, 16, 17, 5],
     {28: 0, 39: 0, 50: 0, 61: 0, 21: 0.01, 22: 0.01, 32: 0.01, 33: 0.01, 43: 0.01, 44: 0.01, 54: 0.01, 55: 0.01},
     {15: (10, 400), 16: (400, 3000), 17: (3000, 10000), 23: (1, 5), 34: (1, 5), 45: (1, 5), 56: (1, 5),
      5: (0.015625, 4)}),
    ("mastering-lv2", "geq", GEQ, [18 + 5 * k for k in range(32)] + [4], {6: 4},
     {**{18 + 5 * k: (0.01585, 5) for k in range(32)}, 4: (0, 4)}),
]

#: Released pins a chain sets otherwise, ``{(chain, symbol): value or None}`` (None: left at the
#: plugin's default). Each is explained in the chain's TOML file (and the README's list of
#: departures): a 0.5 ms attack for the gate and the mastering compressor, Calf's release kept.
DEPARTURES = {
    **{("breath-lv2", f"attack{b}"): 0.5 for b in range(4)},
    **{("breath-lv2", f"release{b}"): None for b in range(4)},
    **{("mastering-lv2", f"attack{b}"): 0.5 for b in range(4)},
    **{("mastering-lv2", f"release{b}"): None for b in range(4)},
}


def port_symbols(uri: str) -> dict[int, str]:
    """``{port index: symbol}`` as the installed plugin declares them."""
    if shutil.which("lv2info") is None:
        pytest.skip("lv2info (Debian lilv-utils) is not installed; make setup installs it")
    done = subprocess.run(["lv2info", uri], capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or "Port 0:" not in done.stdout:
        pytest.skip(f"LV2 plugin {uri} is not installed here ({done.stderr.strip()[:200]})")
    ports = re.findall(r"Port (\d+):.*?Symbol:\s+(\S+)", done.stdout, flags=re.S)
    return {int(i): symbol for i, symbol in ports}


def effect(chain: str, name: str) -> dict:
    return next(e for e in chain_spec(chain)["effects"] if e["name"] == name)


@pytest.mark.parametrize("chain, name, uri, learned, pinned, ranges", RELEASED, ids=lambda v: v if isinstance(v, str) else "")
def test_a_paper_chain_learns_and_pins_the_released_ports(chain, name, uri, learned, pinned, ranges):
    symbols = port_symbols(uri)
    spec = effect(chain, name)
    assert spec["id"] == uri
    assert spec["learn"] == [symbols[i] for i in learned]
    for port, value in pinned.items():
        symbol = symbols[port]
        expected = DEPARTURES.get((chain, symbol), value)
        if expected is None:
            assert symbol not in spec.get("fixed", {}), f"{chain}: {symbol} should be left at its default"
        else:
            assert spec.get("fixed", {}).get(symbol) == pytest.approx(expected), f"{chain}: {symbol} (port {port})"
    with load_chain(chain) as built:
        params = {p.name: p for p in built.params if p.owner == name}
        for port, (low, high) in ranges.items():
            param = params[symbols[port]]
            assert (param.low, param.high) == pytest.approx((low, high)), f"{chain}: range of {param.name}"


def test_every_departure_is_a_released_pin():
    released = {(chain, port_symbols(uri)[port]) for chain, _, uri, _, pinned, _ in RELEASED for port in pinned}
    assert set(DEPARTURES) <= released


def test_the_mastering_chains_end_in_a_limiter_whose_threshold_is_learned():
    symbols = port_symbols(LIMITER)
    lv2 = chain_spec("mastering-lv2")["effects"]
    assert [e["name"] for e in lv2] == ["mbc", "geq", "limiter"]
    assert lv2[-1]["id"] == LIMITER and lv2[-1]["learn"] == ["th"] and symbols[10] == "th"  # the paper's port 7
    with load_chain("mastering-lv2") as chain:
        th = chain.params[-1]
        assert chain.num_params == 50 and th.name == "th" and (th.low, th.high) == pytest.approx((0.003981, 1), rel=1e-3)
    for name, plugin, control in (("mastering-vst3", "ZaMaximX2", "threshold_db"),
                                  ("mastering-builtin", "Limiter", "threshold_db")):
        last = chain_spec(name)["effects"][-1]
        assert (last["name"], last["id"], last["learn"]) == ("limiter", plugin, [control])
