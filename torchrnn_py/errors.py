"""The one exception type that the commands turn into a single line on stderr."""


class TorchRNNError(Exception):
    """A problem with the user's input or environment, worded for the user.

    Library functions raise it with a message that names the file and says what was
    expected and what was found; ``main`` functions print it as one line and exit 1.
    """
