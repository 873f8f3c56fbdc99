"""The one base class of every error the tools report to a user.

Each stage raises its own subclass (defined beside the code that raises it): a bad texture set
(`trainer.textures.InputError`), an unreadable image, scene or .ntc file, a refused output path,
a GL, CUDA or shader-build failure. The message is always one line a user can act on, so the CLIs
print `tool: error: <message>` for any `NTCError` and never a traceback. Code that must tell
cases apart branches on the subclass, never on the message text.
"""
from __future__ import annotations


class NTCError(Exception):
    """A failure a user can act on; str(e) is one line."""


def one_line(e: BaseException) -> str:
    """The first line of an error's message, or its type's name when it has none."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
