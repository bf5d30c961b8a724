"""mmfuse's exceptions. Every one is an :class:`MmfuseError`, and also the built-in exception a
Python user would catch for it (``except ValueError`` catches bad input)."""


class MmfuseError(Exception):
    """Base class of every error mmfuse raises."""


class InputError(MmfuseError, ValueError):
    """Bad input to a call: a post without text or image, a segment of the wrong width, an
    argument of the wrong type or length. The message names the post (index and id)."""


class ImageError(InputError):
    """An image that cannot be read or decoded, or is above the pixel limit; the message names
    the post and the file (or ``<upload>`` / ``<array>``)."""


class ConfigError(MmfuseError, ValueError):
    """A configuration or override that does not parse or validate (unknown key, bad value)."""


class RunFolderError(MmfuseError, OSError):
    """A run folder that cannot be loaded: missing files, damaged checkpoint (checked against
    its manifest), a configuration that does not match the weights."""


class TrainingError(MmfuseError, RuntimeError):
    """Training stopped with an error: a NaN loss, unreadable data (naming file and line), a
    full disk. The last good checkpoint is kept."""


__all__ = ["MmfuseError", "InputError", "ImageError", "ConfigError", "RunFolderError", "TrainingError"]
