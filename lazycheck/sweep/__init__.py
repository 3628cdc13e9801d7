"""``lazycheck sweep``: how laziness scales with alpha, width and seed, and how loose Theorem 2 is.

The Python API::

    import lazycheck
    res = lazycheck.run_sweep("samples/two_layer_tanh.toml", alpha=[0.01, 1, 100],
                              seeds=[0, 1, 2], sets={"model.widths": [[50], [200]]},
                              out="runs/", jobs=2)
    res.status, res.exit_code, res.slopes, res.thresholds, res.to_dict()

Modules: ``grid`` (axes and their syntax), ``metrics`` (one configuration's run), ``store``
(records on disk, keyed by a hash), ``engines`` (serial, processes, Dask), ``aggregate``
(seed statistics, log-log slopes), ``threshold`` (the laziness threshold), ``core``
(:func:`run_sweep`), ``report`` (tables, JSON, CSV), ``plot``. See ``docs/sweep.md``.
"""

from __future__ import annotations

from lazycheck.sweep.core import SweepResult, exit_code_for, run_sweep

__all__ = ["SweepResult", "exit_code_for", "run_sweep"]
