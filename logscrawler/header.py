"""Split a raw log line into its header (timestamp, level, pid, host, logger) and its message.

No per-source format strings: the header is recognised by the shape of its tokens. Leading tokens
that look like dates, times, numbers, ids, levels or bracketed fields (spaces inside allowed) are
header; so is a ``program[pid]:`` / ``logger:`` field right after them and a ``name -`` separator.
The first token that is plain text starts the message.
"""

import re
from dataclasses import dataclass

LEVELS = {
    "trace": "debug",
    "debug": "debug",
    "dbg": "debug",
    "info": "info",
    "information": "info",
    "notice": "info",
    "warn": "warning",
    "warning": "warning",
    "err": "error",
    "error": "error",
    "severe": "error",
    "failure": "error",
    "crit": "critical",
    "critical": "critical",
    "alert": "critical",
    "emerg": "critical",
    "fatal": "critical",
    "panic": "critical",
}
_LETTER_LEVELS = {"V": "debug", "D": "debug", "I": "info", "W": "warning", "E": "error", "F": "critical"}
_MONTHS = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
_DAYS = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

_DIGIT = re.compile(r"\d")
# Date/time/number-ish: digits with separators only (2016-09-28, 04:30:30,, 17/06/09, 1117838570).
_STAMP = re.compile(r"^[\[(]?(?=[:.,/\-+TZ]*+\d)[\d:.,/\-+TZ]++[\])]?,?$")
# A component right after the header: "sshd(pam_unix)[19939]:", "dfs.DataNode$PacketResponder:".
_COMPONENT = re.compile(r"^[\w.$\-/@]++(\([\w.\-]*+\))?(\[[\w.\-]*+\])?:$")
_BRACKETED = re.compile(r"^\[[^\]]*\]$")
# A token carrying an ISO date: a rotated file's name ("api.log.1.2017-05-16_13:53:08") heading a line.
_DATED = re.compile(r"(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)")
# A dotted logger name ("nova.compute.manager") followed by a bracketed context field.
_LOGGER = re.compile(r"^[A-Za-z_][\w$]*+(?:\.[\w$]++)++$")
_PIPE_HEADER = re.compile(r"^(?=[^|\s\d]*+\d)[^|\s]*+\|")
_TOKEN = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class Header:
    level: str | None  # normalised: debug, info, warning, error, critical
    message: str


def _word(token: str) -> str:
    return token.strip("[]()<>:,|").lower()


def _is_stamp(token: str) -> bool:
    word = _word(token)
    return (
        bool(_STAMP.match(token) or _DATED.search(token))
        or word in _MONTHS
        or word in _DAYS
        or bool(_BRACKETED.match(token))
    )


def _is_host_or_id(token: str) -> bool:
    """After a timestamp: "R02-M1-N0-C:J12-U11", "calvisitor-10-105-160-95", "148" (a pid)."""
    return bool(_DIGIT.search(token)) and not token.endswith(":") and "=" not in token


def _bracket_end(spans: list[tuple[int, str]], i: int, most: int = 8) -> int | None:
    """The index of the token closing a ``[...]`` field opened at ``i`` and spanning tokens; None if none."""
    if not spans[i][1].startswith("[") or "]" in spans[i][1]:
        return None
    for j in range(i + 1, min(i + most, len(spans))):
        if "[" in spans[j][1]:
            return None
        if spans[j][1].endswith("]"):
            return j
    return None


def split_header(line: str) -> Header:
    """Find the message inside a raw line; the level when the header names one."""
    line = line.rstrip("\r\n")
    if _PIPE_HEADER.match(line):
        return _split_pipe_fields(line)
    spans = [(m.start(), m.group()) for m in _TOKEN.finditer(line)]
    level: str | None = None
    i = 0
    stamps = 0
    # timestamps, ids, bracketed fields and levels at the start
    while i < len(spans) and i < 12:
        token = spans[i][1]
        word = _word(token)
        if word in LEVELS and level is None:
            level = LEVELS[word]
        elif stamps and level is None and token in _LETTER_LEVELS:  # Android's "D", "E"...
            level = _LETTER_LEVELS[token]
        elif token == "-":  # noqa: S105 - a word of a log header, not a password
            if i > 0:  # "name - message": the separator ends the header
                i += 1
                break
        elif (stamps or level) and (end := _bracket_end(spans, i)) is not None:
            i = end  # "[Socket Reader #1 for port 62260]": a bracketed field with spaces (log4j's thread)
            stamps += 1
        elif _is_stamp(token) or (stamps and _is_host_or_id(token)):
            stamps += 1
        else:
            break
        i += 1
    if stamps == 0 and level is None:
        return Header(None, line.strip())
    # "RAS KERNEL INFO": up to two upper-case facility words before a level
    for ahead in (1, 2):
        if i + ahead < len(spans) and level is None:
            words = [spans[i + k][1] for k in range(ahead)]
            lvl = _word(spans[i + ahead][1])
            if lvl in LEVELS and all(w.isupper() and w.isalpha() for w in words):
                level = LEVELS[lvl]
                i += ahead + 1
                break
    # "INFO nova.compute.manager [req-1 - - -] message": a logger and its bracketed context
    if level is not None and i + 1 < len(spans) and _LOGGER.match(spans[i][1]):
        end = i + 1 if _BRACKETED.match(spans[i + 1][1]) else _bracket_end(spans, i + 1)
        if end is not None:
            i = end + 1
    # a "program[pid]:" or "logger:" field, after at most one host name
    component = False
    for skip in (0, 1):
        if i + skip < len(spans) and _COMPONENT.match(spans[i + skip][1]):
            candidate = spans[i + skip][1]
            if skip == 0 or any(c in candidate for c in "[(.$_-") or level is not None:
                i += skip + 1
                component = True
                break
    # "name - message", "name *64 - message" (Python logging's default and many shippers)
    if not component and level is None:
        for ahead in (1, 2):
            if i + ahead < len(spans) and spans[i + ahead][1] == "-":
                # "- INFO  [thread] - message": a level among the skipped fields still counts
                skipped = (_word(spans[i + k][1]) for k in range(ahead))
                level = next((LEVELS[w] for w in skipped if w in LEVELS), None)
                i += ahead + 1
                break
    # "... - WARNING - message"
    if i + 1 < len(spans) and _word(spans[i][1]) in LEVELS and level is None:
        level = LEVELS[_word(spans[i][1])]
        i += 1
        if i + 1 < len(spans) and spans[i][1] in ("-", "|", ":"):
            i += 1
    if i >= len(spans):
        return Header(level, "")
    return Header(level, line[spans[i][0] :].strip())


def _split_pipe_fields(line: str) -> Header:
    """``20171223-22:15:29:606|Step_LSC|30002312|message``: the leading short fields are header."""
    fields = line.split("|")
    level = None
    kept = 0
    for field in fields[:-1]:
        if " " in field.strip() or not field:
            break
        level = level or LEVELS.get(_word(field))
        kept += 1
        if kept >= 4:
            break
    return Header(level, "|".join(fields[kept:]).strip())
