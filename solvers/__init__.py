"""Solvers for latent-diffusion inverse problems, one file each, behind one registry."""

from solvers import ldps, reference, resample, silo  # noqa: F401  (registers the solvers)
from solvers.common import SolverDiverged
from solvers.registry import SOLVERS, SolverSpec, get_solver, register

__all__ = ["SOLVERS", "SolverDiverged", "SolverSpec", "get_solver", "register"]
