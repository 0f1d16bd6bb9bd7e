"""latent-inverse-bench: a benchmark harness for latent-diffusion inverse-problem solvers."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """`from bench import solve` without importing torch for every `import bench` (the CLI)."""
    if name == "solve":
        from solvers.api import solve

        return solve
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
