"""What is at a path, when it is not a regular file: the one test every file check uses.

A spec, an included file, a model file and an output are each refused when
they are a folder, a device, a FIFO or a socket (reading a FIFO or /dev/zero
never ends), and outputs also when they are a symbolic link. Callers stat
(or lstat) the path themselves, never opening it, and pass its mode here.
"""

from __future__ import annotations

import stat

__all__ = ["FOLDER", "NOT_REGULAR", "not_a_file"]

FOLDER = "a folder"
# How a message says what a path is, when it is neither a file nor a folder.
NOT_REGULAR = "is not a regular file (a device, FIFO or socket)"


def not_a_file(mode: int) -> str | None:
    """None for a regular file; otherwise what the path is, e.g. FOLDER or 'a FIFO (named pipe)'.

    Args:
        mode: `st_mode` from `os.stat` (links followed) or `os.lstat` (a link is 'a symbolic link').
    """
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return FOLDER
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"
