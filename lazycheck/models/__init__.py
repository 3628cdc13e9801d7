"""Model families and their adapters.

* :mod:`lazycheck.models.base`: the :class:`Model` / :class:`Linearization` interface;
* :mod:`lazycheck.models.wrappers`: :class:`CenteredModel`, :class:`SymmetricModel`;
* :mod:`lazycheck.models.mlp`: the built-in fully-connected network;
* :mod:`lazycheck.models.activations`: its activations with derivative bounds.
"""

from __future__ import annotations

from lazycheck.models.base import Linearization, Model
from lazycheck.models.wrappers import CenteredModel, SymmetricModel

__all__ = ["CenteredModel", "Linearization", "Model", "SymmetricModel"]
