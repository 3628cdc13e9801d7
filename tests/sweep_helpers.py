"""Small specs and problem builders shared by the sweep tests (importable by worker processes)."""

from __future__ import annotations

from lazycheck.data import load_data
from lazycheck.models.mlp import MLP
from lazycheck.models.wrappers import CenteredModel
from lazycheck.problem import Problem, rng_for
from lazycheck.spec import Spec

#: a tanh network small enough that one configuration takes a fraction of a second
TINY_TANH = """
name = "tiny tanh"
seed = 0
[data]
source = "synthetic"
n = 5
dim = 3
[model]
widths = [16]
activation = "tanh"
center = true
[flow]
alpha = 10.0
n_times = 40
checkpoints = 4
decay = 6.0
[check]
beta_samples = 3
beta_iterations = 4
ball_points = 3
"""

#: the data of a linear model: n = 6 points in R^10 (the model has p = 10 > n weights)
LINEAR = """
name = "linear model"
seed = 0
[data]
source = "synthetic"
n = 6
dim = 10
inputs = "gaussian"
[model]
widths = [1]
[flow]
n_times = 30
checkpoints = 3
[check]
beta_samples = 2
beta_iterations = 2
ball_points = 2
"""


def build_linear(spec: Spec) -> Problem:
    """f(x, w) = (w . x - w0 . x) / sqrt(d): an MLP without hidden layer, centered, so f is
    exactly linear in w and f(w0) = 0 (the spec's widths are ignored)."""
    data = load_data(spec.data, rng_for(spec.data_seed, "data"), None)
    base = MLP(data.dim, (), "tanh", "ntk", False, 1.0, 1.0)
    w0 = base.init(rng_for(spec.seed, "init"))
    return Problem(spec, data.X, data.y, CenteredModel(base, w0), w0, "synthetic")
