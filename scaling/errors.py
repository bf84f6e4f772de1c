"""The one exception type for bad input: the CLI prints its message as one line, no traceback."""


class GrscaleError(Exception):
    """A problem with the user's input (file, spec, config, data) described in one message."""
