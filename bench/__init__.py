"""latent-inverse-bench: a benchmark harness for latent-diffusion inverse-problem solvers."""

__version__ = "0.1.0"
