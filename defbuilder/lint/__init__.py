"""``defbuilder lint``: find the bugs hand-written definition files have.

>>> from defbuilder.lint import lint_text
>>> [f.code for f in lint_text("Bootstrap: docker\\nFrom: ubuntu\\n", shellcheck=False)]
['DB122', 'DB115', 'DB116']
"""

from .engine import Finding, lint_paths, lint_text, load_policy
from .rules import RULES, Rule

__all__ = ["RULES", "Finding", "Rule", "lint_paths", "lint_text", "load_policy"]
