"""Pure dissectors: bytes in, records out, no IO.  See ``stack.decode``."""
