"""The one exception type the CLI turns into a one-line message."""


class VGGError(Exception):
    """A user-facing error: names the thing at fault and how to fix it, in one line."""
