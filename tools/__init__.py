"""edgectl: the command line for technicians, integrators and QA."""
