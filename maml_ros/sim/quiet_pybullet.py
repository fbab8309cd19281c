"""``pybullet``, imported without the "pybullet build time: ..." line it prints to stderr.

Every process that imports pybullet printed it (each node, each worker), in
the middle of the nodes' log. It is printed by C at module start: stderr's file
descriptor points at /dev/null for the import (C's buffers are flushed before
it is restored).
"""

import ctypes
import os
import sys

sys.stderr.flush()
_saved = os.dup(2)
_null = os.open(os.devnull, os.O_WRONLY)
os.dup2(_null, 2)
try:
    import pybullet  # noqa: F401 - re-exported
finally:
    ctypes.CDLL(None).fflush(None)
    os.dup2(_saved, 2)
    os.close(_saved)
    os.close(_null)

__all__ = ['pybullet']
