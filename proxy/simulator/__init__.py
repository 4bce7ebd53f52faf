"""The obedient simulated upstream: a deterministic, OpenAI-compatible model server for tests.

It follows instructions found anywhere in its context (see `grammar`), so it is the worst case a
defence must survive, and it can be told to fail in controlled ways (see `faults`).
"""

from proxy.simulator.config import SimConfig
from proxy.simulator.server import SimulatorHandle, serve, start_in_thread

__all__ = ["SimConfig", "SimulatorHandle", "serve", "start_in_thread"]
