"""Command groups of edgectl, one module each."""
