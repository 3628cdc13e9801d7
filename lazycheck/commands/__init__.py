"""commands: the work behind each command, as plain functions, and its report.

:mod:`lazycheck.cli` parses options and prints; these modules compute and return frozen result
objects that Python users and tests call directly:

* ``bound``: :func:`~lazycheck.commands.bound.compute_bound` and its :class:`BoundReport`
  (``lazycheck bound``);
* ``simulate``: :func:`~lazycheck.commands.simulate.simulate` and its
  :class:`SimulationResult`; ``simulation_report``: that result's table and values
  (``lazycheck simulate``);
* ``verify``: :func:`~lazycheck.commands.verify.run_verify` and its :class:`VerifyReport`;
  ``checks``: every inequality it evaluates; ``reports``: its JSON, JUnit XML and GitHub
  annotations (``lazycheck verify``);
* ``kernel_report``: :func:`~lazycheck.commands.kernel_report.compare_kernels`, K0 against its
  infinite-width limit (``lazycheck kernel``).

The curated names are in :mod:`lazycheck` (``lazycheck.compute_bound``, ``lazycheck.simulate``,
...); the sweep (:mod:`lazycheck.sweep`) runs these same functions over a grid.
"""
