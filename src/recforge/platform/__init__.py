"""recforge.platform."""
