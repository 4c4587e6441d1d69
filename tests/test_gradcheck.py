"""fxlib.gradcheck on a chain of real plugins: SPSA's direction against finite differences."""
from __future__ import annotations

import numpy as np
import pytest

from fxlib import gradcheck


def test_a_chain_problem_renders_its_target_through_the_chain():
    problem = gradcheck.chain_problem("amp-builtin", seconds=0.25, seed=1)
    audio, target, u = problem["audio"], problem["target"], problem["u"]
    assert audio.shape == target.shape == (1, 1, 5512) and u.shape == (1, len(problem["names"]))
    assert not np.allclose(u.numpy(), problem["u_target"].numpy())
    assert ((u >= 0.05) & (u <= 0.95)).all()
    assert gradcheck.black_box_gradient(problem, method="fd").any()


def test_spsa_points_along_finite_differences_as_draws_grow():
    problem = gradcheck.chain_problem("amp-builtin", seconds=0.25, seed=0)
    cosines = gradcheck.spsa_cosine(problem, draws=(1, 64), epsilons=(0.01,), trials=4)
    assert cosines.shape == (1, 2) and cosines[0, 1] > 0.8 and cosines[0, 1] > cosines[0, 0]
    same = gradcheck.black_box_gradient(problem, method="fd")
    assert gradcheck.cosine(same, same) == pytest.approx(1.0, abs=1e-12)
