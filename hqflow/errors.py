"""The one exception type for mistakes a user can fix (bad input, missing data, wrong flags).

The CLI prints such an error as one line and exits with status 2, without a traceback;
anything else is a bug in hqflow and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input: name the file, key and value at fault in the message."""
