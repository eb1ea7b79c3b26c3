"""Scanning helpers gjson applies to path text: trimming, strings, bracket squashing, unescaping."""

from __future__ import annotations

import re


def trim(s: str) -> str:
    """Strip bytes <= ' ' from both ends (gjson's ``trim``)."""
    i, j = 0, len(s)
    while i < j and s[i] <= " ":
        i += 1
    while j > i and s[j - 1] <= " ":
        j -= 1
    return s[i:j]

def skip_string(s: str, i: int) -> tuple[int, bool]:
    """From just after an opening quote, return the closing quote index and whether '\\' was seen."""
    esc = False
    n = len(s)
    while i < n:
        if s[i] == "\\":
            esc = True
            i += 1
        elif s[i] == '"':
            break
        i += 1
    return i, esc

def _skip_quoted(s: str, i: int, lo: int) -> int:
    """From just after an opening quote at ``lo - 1``, the index of its closing quote (gjson rule)."""
    n = len(s)
    while i < n:
        if s[i] == '"':
            if s[i - 1] == "\\":
                k, j = 0, i - 2
                while j > lo - 1 and s[j] == "\\":
                    k += 1
                    j -= 1
                if k % 2 == 0:
                    i += 1
                    continue
            break
        i += 1
    return i


def squash(text: str) -> str:
    """``squash``: the leading bracketed value (or string) of ``text``, brackets balanced."""
    i, depth = (0, 0) if text[0] == '"' else (1, 1)
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i = _skip_quoted(text, i + 1, i + 1)
            if depth == 0:
                return text if i >= n else text[: i + 1]
        elif c in "{[(":
            depth += 1
        elif c in "}])":
            depth -= 1
            if depth == 0:
                return text[: i + 1]
        i += 1
    return text


def parse_squash(text: str, i: int) -> str:
    """``parseSquash`` from index ``i`` (a bracket is assumed there)."""
    s, depth, n = i, 1, len(text)
    i += 1
    while i < n:
        c = text[i]
        if c == '"':
            i = _skip_quoted(text, i + 1, i + 1)
        elif c in "{[(":
            depth += 1
        elif c in "}])":
            depth -= 1
            if depth == 0:
                return text[s: i + 1]
        i += 1
    return text[s:]

def unescape(s: str) -> str:
    """gjson's ``unescape``: JSON escapes decoded; stops at a control char or a bad escape."""
    out: list[str] = []
    i, n = 0, len(s)
    simple = {"\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", '"': '"'}
    while i < n:
        c = s[i]
        if c < " ":
            break
        if c != "\\":
            out.append(c)
            i += 1
            continue
        i += 1
        if i >= n:
            break
        e = s[i]
        if e in simple:
            out.append(simple[e])
            i += 1
            continue
        if e != "u" or i + 5 > n:
            break
        r, i = _hex4(s, i + 1), i + 5
        if 0xD800 <= r < 0xE000 and n - i >= 6 and s[i: i + 2] == "\\u":
            r2 = _hex4(s, i + 2)
            i += 6
            pair = r < 0xDC00 and 0xDC00 <= r2 < 0xE000
            r = 0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00) if pair else 0xFFFD
        elif 0xD800 <= r < 0xE000:
            r = 0xFFFD  # Go's utf8.EncodeRune writes U+FFFD for a lone surrogate
        out.append(chr(r))
    return "".join(out)


_HEX4 = re.compile(r"[0-9a-fA-F]{4}")


def _hex4(s: str, i: int) -> int:
    """``runeit``: four hex digits (Go's ParseUint error yields 0)."""
    return int(s[i: i + 4], 16) if _HEX4.fullmatch(s, i, i + 4) else 0
