"""``defbuilder lint``: find the bugs hand-written definition files have.

>>> from defbuilder.lint import lint_text
>>> [f.code for f in lint_text("Bootstrap: docker\\nFrom: ubuntu\\n", shellcheck=False)]
['DB122', 'DB116']
"""

from .context import Finding, Rule, Severity
from .engine import lint_paths, lint_text, load_policy, rule_codes
from .rules import RULES

__all__ = [
    "RULES",
    "Finding",
    "Rule",
    "Severity",
    "lint_paths",
    "lint_text",
    "load_policy",
    "rule_codes",
]
