"""`bench profile`: the runtime of each solver from random-weight networks (DESIGN.md §5)."""
