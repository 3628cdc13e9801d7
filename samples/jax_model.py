"""A JAX model for lazycheck: a tanh network with two hidden layers, NTK parameterization.

The factory returns the pair (apply, params): apply(params, X) -> (n,), params a dict of
arrays (a pytree). Needs `pip install 'lazycheck[jax]'`. Used by samples/jax_mlp.toml.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import jax.numpy as jnp
import numpy as np


def apply(params: dict, X: jnp.ndarray) -> jnp.ndarray:
    h = X
    for W in params["hidden"]:
        h = jnp.tanh(h @ W.T / jnp.sqrt(W.shape[1]))
    v = params["out"]
    return h @ v / jnp.sqrt(v.shape[0])


def make_model(
    input_dim: int, rng: np.random.Generator, widths: tuple = (64, 64)
) -> tuple[Callable[[dict, jnp.ndarray], jnp.ndarray], dict]:
    """Weights N(0, 1) drawn from lazycheck's seeded generator (the spec's init stream)."""
    dims = [input_dim, *widths]
    hidden = [jnp.asarray(rng.standard_normal((b, a))) for a, b in pairwise(dims)]
    params = {"hidden": hidden, "out": jnp.asarray(rng.standard_normal(dims[-1]))}
    return apply, params
