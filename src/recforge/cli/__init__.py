"""recforge.cli."""
