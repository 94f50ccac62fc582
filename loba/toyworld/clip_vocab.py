"""CLIP's byte-level BPE alphabet: the 256 printable stand-ins for bytes every CLIP vocabulary starts with."""

from __future__ import annotations


def byte_alphabet() -> list[str]:
    """One printable character per byte value, in CLIP's (and GPT-2's) order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]
