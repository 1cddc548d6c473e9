"""The shipped scenarios (YAML), installed as the package data `feedbackgym.scenarios`; see docs/scenarios.md."""
