"""Solvers for latent-diffusion inverse problems, one file each, behind one registry."""

from solvers import gml_dps, ldps, psld, reference, resample, silo  # noqa: F401  (registers)
from solvers.api import solve
from solvers.common import SolverDiverged
from solvers.registry import SOLVERS, SolverSpec, get_solver, register

__all__ = ["SOLVERS", "SolverDiverged", "SolverSpec", "get_solver", "register", "solve"]
