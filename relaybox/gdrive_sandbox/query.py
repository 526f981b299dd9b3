"""``files.list``'s ``q`` (the search query language, a subset) and ``orderBy``.

``q`` takes clauses joined with ``and`` / ``or``, ``not`` and parentheses:
``'<id>' in parents``, ``name`` and ``mimeType`` with ``=``, ``!=`` or ``contains``,
``fullText contains``, ``trashed`` and ``starred`` with ``=`` / ``!=`` ``true`` / ``false``,
``modifiedTime`` and ``createdTime`` compared (``<``, ``<=``, ``=``, ``!=``, ``>=``, ``>``)
with an RFC 3339 time in quotes. Anything else is 400 ``invalid`` on ``q``.
"""

import re
from collections.abc import Callable
from datetime import datetime

from relaybox.gdrive_sandbox.drive import ROOT_ALIAS, Drive
from relaybox.gdrive_sandbox.errors import invalid
from relaybox.gdrive_sandbox.model import DriveFile

Predicate = Callable[[DriveFile], bool]

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<op>!=|<=|>=|=|<|>)|(?P<paren>[()])"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)
_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class _Parser:
    def __init__(self, text: str, drive: Drive) -> None:
        self.drive = drive
        self.tokens: list[tuple[str, str]] = []
        at, text = 0, text.strip()
        while at < len(text):
            match = _TOKEN.match(text, at)
            if match is None or match.lastgroup is None:
                raise invalid("q")
            self.tokens.append((match.lastgroup, match.group(match.lastgroup)))
            at = match.end()
        self.at = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise invalid("q")
        self.at += 1
        return token

    def word(self, *names: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "word" and token[1].lower() in names:
            self.at += 1
            return True
        return False

    def parse(self) -> Predicate:
        predicate = self.either()
        if self.peek() is not None:
            raise invalid("q")
        return predicate

    def either(self) -> Predicate:
        parts = [self.both()]
        while self.word("or"):
            parts.append(self.both())
        return parts[0] if len(parts) == 1 else (lambda f: any(p(f) for p in parts))

    def both(self) -> Predicate:
        parts = [self.unary()]
        while self.word("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda f: all(p(f) for p in parts))

    def unary(self) -> Predicate:
        if self.word("not"):
            inner = self.unary()
            return lambda f: not inner(f)
        if self.peek() == ("paren", "("):
            self.at += 1
            inner = self.either()
            if self.take() != ("paren", ")"):
                raise invalid("q")
            return inner
        return self.clause()

    def clause(self) -> Predicate:
        kind, value = self.take()
        if kind == "string":
            if not self.word("in") or self.take() != ("word", "parents"):
                raise invalid("q")
            wanted = _unquote(value)
            parent = self.drive.root_id if wanted == ROOT_ALIAS else wanted
            return lambda f: parent in f.parents
        if kind != "word":
            raise invalid("q")
        field = value
        operator = "contains" if self.word("contains") else self.take()[1]
        operand_kind, operand = self.take()
        if field in ("trashed", "starred"):
            return _flag(field, operator, operand_kind, operand)
        if operand_kind != "string":
            raise invalid("q")
        text = _unquote(operand)
        if field in ("modifiedTime", "createdTime") and operator in _COMPARE:
            moment = _time(text)
            compare = _COMPARE[operator]
            if field == "modifiedTime":
                return lambda f: compare(int(f.modified_time * 1000), moment)
            return lambda f: compare(int(f.created_time * 1000), moment)
        if field in ("name", "mimeType"):
            return _text(field, operator, text)
        if field == "fullText" and operator == "contains":
            needle = text.lower()
            return lambda f: needle in f.name.lower() or needle.encode() in f.content.lower()
        raise invalid("q")


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1])


def _time(text: str) -> int:
    """Milliseconds since the epoch (Drive's times have no finer part)."""
    try:
        return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        raise invalid("q") from None


def _flag(field: str, operator: str, kind: str, value: str) -> Predicate:
    if kind != "word" or value.lower() not in ("true", "false") or operator not in ("=", "!="):
        raise invalid("q")
    wanted = (value.lower() == "true") == (operator == "=")
    if field == "starred":
        return lambda f: not wanted
    return lambda f: f.trashed == wanted


def _text(field: str, operator: str, text: str) -> Predicate:
    def value(item: DriveFile) -> str:
        return item.name if field == "name" else item.mime_type

    if operator == "=":
        return lambda f: value(f) == text
    if operator == "!=":
        return lambda f: value(f) != text
    if operator == "contains":
        return lambda f: text.lower() in value(f).lower()
    raise invalid("q")


def predicate(text: str | None, drive: Drive) -> Predicate:
    """What ``q`` selects (everything, trashed files included, when absent: as Drive)."""
    if text is None or not text.strip():
        return lambda f: True
    return _Parser(text, drive).parse()


SortKey = Callable[[DriveFile], object]
_ORDER: dict[str, SortKey] = {
    "createdTime": lambda f: f.created_time,
    "folder": lambda f: not f.is_folder,
    "modifiedTime": lambda f: f.modified_time,
    "modifiedByMeTime": lambda f: f.modified_time,
    "recency": lambda f: f.modified_time,
    "viewedByMeTime": lambda f: f.modified_time,
    "name": lambda f: f.name.lower(),
    "name_natural": lambda f: f.name.lower(),
    "quotaBytesUsed": lambda f: len(f.content),
    "sharedWithMeTime": lambda f: 0,
    "starred": lambda f: 0,
}


def ordered(items: list[DriveFile], order_by: str | None) -> list[DriveFile]:
    """``items`` sorted by ``orderBy`` (``name,modifiedTime desc``); as given when absent."""
    if order_by is None or not order_by.strip():
        return items
    keys: list[tuple[SortKey, bool]] = []
    for part in order_by.split(","):
        words = part.split()
        if not words or len(words) > 2 or words[0] not in _ORDER:
            raise invalid("orderBy")
        if len(words) == 2 and words[1].lower() not in ("asc", "desc"):
            raise invalid("orderBy")
        keys.append((_ORDER[words[0]], len(words) == 2 and words[1].lower() == "desc"))
    result = list(items)
    for key, descending in reversed(keys):
        result.sort(key=key, reverse=descending)  # type: ignore[arg-type]
    return result
