"""recforge: strong, tuned recommender baselines with paper-exact evaluation, and a job platform."""

__version__ = "0.1.0"
