"""Argument types shared by subcommands (each raises argparse errors with one clear line) and
the help formatter that shows defaults."""

from __future__ import annotations

import argparse
import textwrap
from typing import TypeVar

from chaosproxy.process import option_values
from chaosproxy.process.option_values import argtype

T = TypeVar("T")


host_port = argtype(option_values.host_port)
http_url = argtype(option_values.http_url)
duration = argtype(option_values.duration)
positive_int = argtype(option_values.positive_int)
size = argtype(option_values.size)


class DefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends `(default: …)` to a flag's help unless the help already speaks of its default.

    Flags without a value (on/off switches) show `(default: off)`; a flag whose default is None
    says what none means in its own help.
    """

    def _split_lines(self, text: str, width: int) -> list[str]:
        """Wrapped at spaces only: `--admin-token` or `X-Client-Id` never split at a dash."""
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not action.option_strings or "default" in text or action.default is argparse.SUPPRESS:
            return text
        if action.nargs == 0:
            return f"{text} (default: off)".strip()
        if action.default is None:
            return text
        value = action.default
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return f"{text} (default: {str(value).replace('%', '%%')})".strip()
