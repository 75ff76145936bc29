"""Modules stay small enough to read in one sitting: one over 400 lines says why at its top, in
its docstring ("… on purpose: …"), or it is split along its seams."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "chaosproxy"
LIMIT = 400


def test_a_module_over_the_limit_says_why_at_its_top() -> None:
    unexplained = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines <= LIMIT:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if "on purpose" not in doc:
            unexplained.append(f"{path.relative_to(PACKAGE.parent)} ({lines} lines)")
    assert unexplained == []
