"""EdgeFusion Export: compile few-step text-to-image models for phone NPUs."""

__version__ = "0.1.0"
