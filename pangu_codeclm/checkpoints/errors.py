"""The one error type of the checkpoint layer."""


class CheckpointError(ValueError):
    """A checkpoint directory or file that does not match what is expected; the message names the file and key."""
