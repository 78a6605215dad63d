"""The technician's side of `edgectl board`: finding ports, opening them, and talking to boards."""
