"""Models: one module per family; each exposes a config dataclass and a ``fit_*`` function."""
