"""Small specs and problem builders shared by the sweep tests (importable by worker processes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class GatedBuild:
    """A problem builder that holds a configuration on its worker: it marks its start with a file
    ``started-*`` in ``directory``, waits until a file ``open`` appears there, then builds the
    problem as usual (:func:`lazycheck.problem.make_problem`)."""

    directory: str
    timeout: float = 120.0

    def __call__(self, spec: Spec) -> Problem:
        import time
        import uuid

        from lazycheck.problem import make_problem

        folder = Path(self.directory)
        (folder / f"started-{uuid.uuid4().hex}").touch()
        deadline = time.monotonic() + self.timeout
        while not (folder / "open").exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{folder / 'open'} never appeared")
            time.sleep(0.01)
        return make_problem(spec)


def profiler_plugin(name: str = "lazycheck-sweep") -> Any:
    """A worker plugin as an earlier lazycheck registered for a sweep: ``setup`` stops the
    worker's profiler, ``teardown`` (on unregistering) starts it again."""
    from distributed import WorkerPlugin

    class ProfilerPause(WorkerPlugin):
        def setup(self, worker: Any) -> None:
            worker.periodic_callbacks["profile"].stop()

        def teardown(self, worker: Any) -> None:
            worker.periodic_callbacks["profile"].start()

    plugin = ProfilerPause()
    plugin.name = name
    return plugin
