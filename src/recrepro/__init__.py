"""recrepro: a reproducibility study of five papers that model user-item interactions."""

__version__ = "0.1.0"
