"""numerics: the linear algebra and the integrators the commands are built on.

Modules: ``spectrum`` (sigma_min and sigma_max of J0, dense or matrix-free, and the memory they
need), ``lanczos`` (extreme eigenpairs by products alone), ``kernel_extremes`` (the kernel's
extreme eigenvalues along a path, matrix-free), ``roots`` (a bracketing root finder),
``linear_flow`` (the linearized flow in closed form, and the phi-functions) and ``flow`` (the
nonlinear flow's integrators: the exponential Adams method, scipy's solvers, gradient descent).
Each takes arrays and :class:`~lazycheck.models.base.Linearization` objects; none reads a spec
or prints.
"""
