"""A task-metadata (TMDS v4) emulator for tests and `make local`."""

from emulator.server import SCENARIOS, Emulator

__all__ = ["SCENARIOS", "Emulator"]
