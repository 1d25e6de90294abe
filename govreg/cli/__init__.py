"""The ``govreg`` command line: :mod:`govreg.cli.core` holds the click group,
``--json``, sessions and the error-to-exit-code mapping; each other module holds
one family of commands, registered on the group when this package is imported.
"""

from govreg.cli import audit, demo, evidence, home, keys, mirror, people, policy, serve, versions
from govreg.cli.core import REFUSED, cli, main

__all__ = ["REFUSED", "cli", "main"]
# the command modules, imported for their commands
_COMMANDS = (audit, demo, evidence, home, keys, mirror, people, policy, serve, versions)
