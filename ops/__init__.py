"""``tenant-dna``: the command for the people who operate the stored profiles.

It sits at the top of the layers, beside ``bench``, and reaches profiles only
through ``storage``'s interface: no SQL of its own, so every backend that
passes the storage suite works here too.
"""

from ops.cli import main

__all__ = ["main"]
