"""`from minigpt.widgets import Playground`: the norm-placement playground of notebook 04, kept importable under
its first name. The code is the minigpt/playground package (controls, runner, figure)."""

from .config import default_preset_name  # noqa: F401  (tests patch it here)
from .playground import (
    CPU_DEFAULTS,
    DEFAULT_STEPS,
    FLAG_HELP,
    Playground,
    PlaygroundRun,
    dropdown_choices,
    model_runs,
)

__all__ = ["Playground", "PlaygroundRun", "dropdown_choices", "model_runs", "FLAG_HELP", "DEFAULT_STEPS",
           "CPU_DEFAULTS"]
