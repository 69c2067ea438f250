"""docs/hardware.md quotes the lines the load generator and zcrxprof print (in ```text blocks);
each must still be printable by the sources, so the runbook cannot drift from the messages.

A quoted line matches a format string of the sources (C literals in loadgen/, joined across
adjacent literals and the string macros of its headers; Python strings and f-strings in
zcrxprof/), with its conversions (%s, %u, {…}) as wildcards. What a wildcard stands for must be a
name, a number or a list of those, or itself a string of the sources (the reason the kernel gave,
a hint): so the explanation quoted after "cannot host zcrx:" is checked too.
"""
from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "hardware.md"
C_LITERAL = r'"(?:[^"\\\n]|\\.)*"'
C_CONVERSION = re.compile(r"%%|%[-+ #0]*(?:\*|\d+)?(?:\.(?:\*|\d+))?(?:hh|h|ll|l|z|j|t)?([diouxXscpfeEgG])")
ERRNO_SUFFIX = r"(?:: .+? failed: E[A-Z0-9]+ \([^()]+\))?"      # lg_error_set's, when an errno is set
PREFIXES = ("zcrx-loadgen: error: ", "zcrxprof: error: ", "zcrx-loadgen: ")
DOCTOR_LINE = re.compile(r"(?:ok|no) +\S.*? {2,}(.*?)(?: — (?:disables|note): (.*))?")
NAME = r"[\w.$/:+-]+(?: \([\w.$/:+-]+\))?"                    # eth0, eth0 (virtio_net), 6.18.44
FREE = re.compile(rf"{NAME}(?:, {NAME})*|[\d ]+|queues? [\d,]+(?:\.\.\.)?")   # names, numbers, nic.c's qtext


def _c_unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), body)


def _c_strings() -> list[str]:
    """Every C string of loadgen/: adjacent literals and string macros joined."""
    files = sorted((ROOT / "loadgen").glob("*.[ch]"))
    macros = {}
    for f in files:
        for m in re.finditer(rf"^#define\s+(\w+)\s+({C_LITERAL})\s*(?:/\*.*)?$", f.read_text(), re.M):
            macros[m[1]] = _c_unescape(m[2][1:-1])
    token = rf"(?:{C_LITERAL}|\b(?:{'|'.join(macros) or 'NO_MACRO'})\b)"
    out = []
    for f in files:
        text = re.sub(r"/\*.*?\*/", " ", f.read_text(), flags=re.S)
        text = re.sub(r"^\s*//.*$", " ", text, flags=re.M)
        for m in re.finditer(rf"{token}(?:\s*{token})*", text):
            parts = re.findall(token, m[0])
            if any(p.startswith('"') for p in parts):
                out.append("".join(_c_unescape(p[1:-1]) if p.startswith('"') else macros[p] for p in parts))
    return out


def _c_regex(fmt: str) -> str:
    rx, pos = "", 0
    for m in C_CONVERSION.finditer(fmt):
        rx += re.escape(fmt[pos:m.start()])
        rx += "%" if m[0] == "%%" else "(.*?)" if m[1] == "s" else "(?:-?[0-9]+(?:\\.[0-9]+)?)"
        pos = m.end()
    return rx + re.escape(fmt[pos:])


def _py_strings() -> list[tuple[str, str]]:
    """(literal text, regex) of every string and f-string in zcrxprof/ ({…} are wildcards)."""
    out = []
    for f in sorted((ROOT / "zcrxprof").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value if isinstance(v, ast.Constant) else "\0" for v in node.values)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = re.sub(r"\{\w*\}", "\0", node.value)      # str.format fields
            else:
                continue
            out.append((text.replace("\0", ""), "(.*?)".join(re.escape(p) for p in text.split("\0"))))
    return out


@lru_cache(maxsize=1)
def sources() -> tuple[set[str], list[tuple[str, re.Pattern]]]:
    """(exact strings, [(longest literal chunk, compiled format)]) of loadgen/ and zcrxprof/."""
    exact, formats = set(), []
    for fmt in _c_strings():
        exact.add(fmt.strip())
        formats.append((C_CONVERSION.split(fmt), _c_regex(fmt.rstrip("\n"))))
    for text, rx in _py_strings():
        exact.add(text.strip())
        formats.append((re.split(r"\(\.\*\?\)", rx), rx))
    compiled = []
    for chunks, rx in formats:
        anchor = max((c for c in chunks if c), key=len, default="").replace("\\", "")
        if len(re.sub(r"\s", "", anchor)) >= 8:           # a format that says something
            compiled.append((anchor, re.compile(rx + ERRNO_SUFFIX, re.S)))
    return exact, compiled


def explained(text: str, depth: int = 0) -> bool:
    """Whether the sources can print ``text`` (what each wildcard stands for checked in turn)."""
    exact, formats = sources()
    if depth and (text.strip() in exact or FREE.fullmatch(text.strip()) or " " not in text.strip()):
        return True
    if depth > 3:
        return False
    for anchor, rx in formats:
        if anchor in text:
            m = rx.fullmatch(text)
            if m and all(explained(g, depth + 1) for g in m.groups() if g):
                return True
    return False


def quoted_lines() -> list[str]:
    """The lines of docs/hardware.md's ```text blocks."""
    lines, inside = [], False
    for line in DOC.read_text().splitlines():
        if line.startswith("```"):
            inside = line == "```text"
        elif inside and line.strip():
            lines.append(line)
    assert not inside, "an unclosed ```text block"
    return lines


def message(line: str) -> str:
    """The line without the prefix and suffix its printer adds (``zcrx-loadgen: error: %s``
    would match any text): the message the sources hold."""
    for prefix in PREFIXES:
        if line.startswith(prefix) and not line.startswith("zcrx-loadgen: warning: "):   # in nic.c's format
            return line[len(prefix):].removesuffix(" (see --help)")
    return line


def test_every_message_the_runbook_quotes_is_still_in_the_sources():
    lines = quoted_lines()
    assert len(lines) >= 20, "docs/hardware.md quotes fewer messages than it did"
    stale = []
    for line in lines:
        doctor = DOCTOR_LINE.fullmatch(line)
        if doctor and not line.startswith(PREFIXES):
            ok = all(explained(part) for part in doctor.groups() if part)
        else:
            ok = explained(message(line))
        if not ok:
            stale.append(line)
    assert stale == [], "docs/hardware.md quotes lines no source prints:\n" + "\n".join(stale)
    for doc in ("README.md", "docs/architecture.md"):
        assert "docs/hardware.md" in (ROOT / doc).read_text(), f"{doc} does not link docs/hardware.md"
