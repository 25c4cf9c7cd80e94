"""Exceptions that carry a one-line, user-facing message naming the problem and what to do.

The CLI prints ``error: <message>`` and exits with code 2 for any :class:`TLTError`; the Slicer module shows
the message in a dialog. Everything else is a bug and gets a traceback.
"""

from __future__ import annotations


class TLTError(Exception):
    """Base class for errors caused by the user's input or environment, not by a bug."""


class InputError(TLTError, ValueError):
    """An input file, argument or point is missing, malformed or out of range."""


class ModelFileError(TLTError):
    """A model file is missing, corrupt, of another format version, or fails its checksum."""


class DeviceError(TLTError):
    """The requested compute device is unavailable or ran out of memory."""


class Cancelled(TLTError):
    """The user cancelled tracking."""
