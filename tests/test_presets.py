"""The preset chains build, with the paper's numbers of learned controls."""
import numpy as np
import pytest

from fxlib import FxError, SpecError
from fxlib import presets

PAPER_COUNTS = {"amp-lv2": [21], "breath-lv2": [17], "mastering-lv2": [16, 33, 1]}


def build_or_skip(name):
    try:
        return presets.load_chain(name)
    except FxError as e:
        if presets.chain_spec(name)["effects"][0]["kind"] == "builtin":
            raise
        pytest.skip(f"{name}: backend unavailable here ({e})")


@pytest.mark.parametrize("name", presets.CHAINS)
def test_preset_builds_and_processes(name):
    with build_or_skip(name) as chain:
        assert chain.num_params == len(chain.names) > 0
        assert np.all((chain.default_unit() >= 0) & (chain.default_unit() <= 1))
        x = np.random.default_rng(0).uniform(-0.3, 0.3, (1, 4096)).astype(np.float32)
        y = chain.process(x, np.full(chain.num_params, 0.5))
        assert y.shape == x.shape and np.isfinite(y).all()
        assert chain.to_spec()["name"] == name


@pytest.mark.parametrize("name", sorted(PAPER_COUNTS))
def test_paper_chains_learn_the_papers_controls(name):
    with build_or_skip(name) as chain:
        per_effect = [sum(p.owner == s.name for p in chain.params) for s in chain.stages]
        assert per_effect == PAPER_COUNTS[name]
        assert chain.stages[0].spec["kind"] == "lv2"


def test_paper_amp_ranges():
    with build_or_skip("amp-lv2") as chain:
        by_name = dict(zip(chain.names, chain.params))
        assert (by_name["mbc.freq0"].low, by_name["mbc.freq0"].high) == (10, 400)
        assert (by_name["mbc.freq2"].low, by_name["mbc.freq2"].high) == (3000, 8000)
        assert by_name["mbc.level_in"].scale == "db"
        assert chain.effect("mbc").get("attack0") == pytest.approx(0.01)
        assert chain.effect("mbc").get("bypass0") == 0.0


def test_unknown_preset_suggests_closest():
    with pytest.raises(SpecError, match="amp-lv2"):
        presets.chain_spec("amp_lv2")
