"""recforge.tuning."""
