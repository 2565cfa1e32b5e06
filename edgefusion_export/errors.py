"""The one exception type for user mistakes: the CLI prints it as a single line and exits non-zero."""


class UserError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type name when empty), for one-line errors."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:limit]
