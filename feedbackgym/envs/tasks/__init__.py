"""Task families, one self-contained module (or folder) each. Importing this package imports
every family in it; each registers itself in `feedbackgym.core.TASKS` with ``@register_task``,
so adding a family is adding its module (plus a scenario YAML and its banks), nothing else."""

import importlib
import pkgutil

from feedbackgym.core import TASKS

for _m in pkgutil.iter_modules(__path__):
    if _m.name != "base" and not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["TASKS"]
