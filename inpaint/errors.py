"""The one exception type whose message is shown to the user as a one-line error."""


class UserError(Exception):
    """Bad input or an impossible request; the CLI prints `error: <message>` and exits 2."""
