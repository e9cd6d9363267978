"""Make indexed text inert before it reaches an agent or a terminal.

Strips ANSI/terminal escape sequences, C0/C1 control characters (tab and newline stay),
bidirectional overrides and isolates (the "Trojan Source" characters), and zero-width
characters that hide text. What is left reads the same to a person and to a model.
"""

from __future__ import annotations

import re

ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI ... final byte
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC ... BEL or ST
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC
    r"|\x1b[@-Z\\-_]"  # two-byte escapes
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
)
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
INVISIBLE = re.compile(
    "[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u180e\u00ad\u061c"
    "\U000e0000-\U000e007f]"  # also Unicode "tag" characters, used to smuggle hidden text
)


def clean(text: str) -> str:
    text = ANSI.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = CONTROL.sub("", text)
    return INVISIBLE.sub("", text)
