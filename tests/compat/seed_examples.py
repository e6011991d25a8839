"""The Python examples of a seed document, taken from its text as they are.

The seed documents are web pages saved as text: each example is the line after a line ``python``, and
saving lost its line breaks (``import gentracePIPELINE_SLUG = "compose"pipeline = ...``, comments running
into the code after them). :func:`python_examples` finds the examples and :func:`rebuild` puts the line
breaks back, changing nothing else:

* ``import gentracePIPELINE_SLUG``: the module's name is the part that the examples use as a name;
* at bracket depth 0, a statement ends where a closing bracket or string is followed by a name;
* a comment ends where the code that compiles resumes: the earliest place after the ``#`` where a name
  that the examples use elsewhere begins (or any name, after a sentence's full stop), or, inside
  brackets, a string begins, such that the whole example then compiles (``correctgentrace={...}``
  splits as ``correct`` + ``gentrace={...}``, as no example uses ``correctgentrace``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["python_examples", "rebuild"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPEN, _CLOSE = "([{", ")]}"


def python_examples(text: str) -> list[str]:
    """Each Python example of a seed document (the line after each line ``python``), as saved."""
    lines = text.splitlines()
    return [lines[i + 1] for i, line in enumerate(lines[:-1]) if line.strip() == "python"]


def _string_end(s: str, i: int) -> int:
    """The index after the string literal that starts at ``s[i]`` (or len(s) when it never ends)."""
    quote, j = s[i], i + 1
    while j < len(s):
        if s[j] == "\\":
            j += 2
            continue
        if s[j] == quote:
            return j + 1
        j += 1
    return len(s)


def _compiles(source: str) -> bool:
    try:
        compile(source, "<example>", "exec")
    except SyntaxError:
        return False
    return True


def _viable(source: str) -> bool:
    """Whether ``source`` can still be the start of a program: it compiles, or fails only at its end."""
    try:
        compile(source, "<example>", "exec")
    except SyntaxError as exc:
        lines = source.rstrip("\n").count("\n") + 1
        return "never closed" in str(exc.msg) or (exc.lineno or 0) >= lines
    return True


def _whole(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])")


class _Rebuilder:
    def __init__(self, code: str, corpus: str) -> None:
        self.s = code
        self.corpus = corpus  # every example of the document: which names its code uses

    def _known(self, word: str, glued: bool) -> bool:
        """Whether the examples use ``word`` as a name somewhere other than here."""
        count = len(_whole(word).findall(self.corpus))
        return count - (0 if glued else 1) >= 1

    def _resumes(self, p: int, depth: int) -> bool:
        """Whether code may resume at ``s[p]`` after a comment."""
        s = self.s
        if p == len(s) or s[p] == "#":
            return True
        if s[p] in "\"'":
            return depth > 0  # a dict key or an argument; a bare string is no statement
        name = _NAME.match(s, p)
        if name is None:
            return False
        glued = s[p - 1].isalnum() or s[p - 1] == "_"
        if self._known(name.group(), glued):
            return True
        return not glued and s[p - 1] in ".!?"  # a sentence ended, then the code

    def solve(self, i: int = 0, out: str = "", depth: int = 0) -> str | None:
        """The program from ``s[i:]`` appended to ``out`` that compiles, or None."""
        s = self.s
        while i < len(s):
            c = s[i]
            if c in "\"'":
                end = _string_end(s, i)
                out += s[i:end]
                i = end
                continue
            if c == "#":
                if not _viable(out):
                    return None
                for p in self._comment_ends(i, depth):
                    found = self.solve(p, out + s[i:p].rstrip() + "\n", depth)
                    if found is not None:
                        return found
                return None
            if c in _OPEN:
                depth += 1
            elif c in _CLOSE:
                depth = max(0, depth - 1)
            elif depth == 0 and out and out[-1] in ")]}\"'" and _NAME.match(c):
                out += "\n"  # a statement ended here
            out += c
            i += 1
        return out if _compiles(out) else None

    def _comment_ends(self, i: int, depth: int) -> Iterator[int]:
        for p in range(i + 1, len(self.s) + 1):
            if self._resumes(p, depth):
                yield p


def rebuild(code: str, corpus: str) -> str:
    """``code`` (one example, its line breaks lost) with its line breaks back; ``corpus`` is every
    example of its document. Raises ``ValueError`` when no reading of it compiles."""
    rebuilder = _Rebuilder(code, corpus)
    glued = re.match(r"import ([A-Za-z_][A-Za-z0-9_]*)", code)
    if glued is not None:  # "import gentracePIPELINE_SLUG = ...": the module, then the next statement
        word = glued.group(1)
        for k in range(1, len(word)):
            if rebuilder._known(word[:k], True) and rebuilder._known(word[k:], True):
                code = f"import {word[:k]}\n{code[glued.end(1) - len(word) + k :]}"
                rebuilder = _Rebuilder(code, corpus)
                break
    found = rebuilder.solve()
    if found is None:
        raise ValueError(f"no reading of this example compiles: {code[:80]}...")
    return found
