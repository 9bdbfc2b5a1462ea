"""Inverse solvers (classical and diffusion-based) over operators from :mod:`vidrestore.ops`."""

from .classical import grad3, grad3_adjoint, solve_admm_tv, solve_cg

__all__ = ["grad3", "grad3_adjoint", "solve_admm_tv", "solve_cg"]
