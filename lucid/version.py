"""``--version`` for every command-line entry point (``launch.*``, ``lucid.visual``).

It prints the lucid version and the Python running it, then exits 0.
"""
from __future__ import annotations

import argparse
import platform


def version_text() -> str:
    import lucid

    return f"lucid {lucid.__version__} (Python {platform.python_version()})"


class _VersionAction(argparse.Action):
    """Like argparse's "version" action, but the text is computed only when asked for."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())  # stdout, like argparse's own version action
        parser.exit()


def add_version(parser: argparse.ArgumentParser) -> None:
    """Add ``--version`` (prints ``lucid X.Y.Z (Python A.B.C)`` and exits 0)."""
    parser.add_argument("--version", action=_VersionAction, help="print the lucid version and exit")
