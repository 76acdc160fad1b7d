"""The shipped presets live in the agent layer (mbrl.agents.presets); re-exported here for
the loop drivers and scripts."""

from mbrl.agents.presets import PRESETS, ParamError, merge_params, preset

__all__ = ["PRESETS", "ParamError", "merge_params", "preset"]
