"""Attack simulation: agent scenarios run through the proxy against the obedient simulator."""
