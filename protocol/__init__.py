"""Wire layer: XDR codec, framing, errors, typed params."""
