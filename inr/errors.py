"""User-facing errors.

Anything a user can cause (bad file, impossible size, unknown model) raises `InrError`;
front ends print its message on one line and exit 2 (CLI) or answer 4xx (API). Every other
exception is a bug and is allowed to surface as one.
"""


class InrError(Exception):
    """A problem with the user's input or request, with a message meant for that user."""
