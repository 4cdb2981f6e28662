"""recforge.experiments."""
