"""Token classes: the variable parts of a log message (numbers, ids, addresses, paths) become ``<*>``.

One generic rule set for every source. A token is split on punctuation into pieces; a piece is a
variable when it carries a digit, is a hex run, an address, a path or a host. Keys of ``key=value``
pairs and plain words stay, so the template keeps the words that make a message recognisable.
"""

import re
from functools import lru_cache

WILDCARD = "<*>"

# Whole tokens that are variables however they are spelt inside.
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S+$")
_EMAIL = re.compile(r"^[\w.+-]+@[\w-]+(\.[\w-]+)+$")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_PATH = re.compile(r"^(~|\.{1,2})?(/[^/\s]*){2,}$|^[A-Za-z]:\\\S*$")
_HOST_PORT = re.compile(r"^(([\w-]+\.)+[\w-]+|localhost|\[[0-9a-fA-F:]+\]):\d+$")
# A host name: dotted labels ending in a common top-level domain.
_DOMAIN = re.compile(
    r"^([a-z0-9-]+\.)+(com|net|org|edu|gov|io|dev|app|co|uk|de|fr|jp|cn|hk|ru|info|biz|local|internal|"
    r"cloud|ai)$",
    re.IGNORECASE,
)
# Three or more dotted labels with a digit ("24-54-76-216.bflony.adelphia.net", "6.1.7601.23505") or
# ending in a two-letter country domain: a host or a version, a value either way.
_DOTTED_VALUE = re.compile(
    r"^(?=[^.]*\d|.*\.(?!(py|js|ts|rb|go|sh|md|so|gz|rs)$)[a-z]{2}$)[\w-]+(\.[\w-]+){2,}$"
)
# The extension of a file name ("<*>.pcapng").
_FILE_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,5}$")
# logfmt's key=value: a value that is a host or an id is one variable ("rhost=a-1.example.net")
_KEY_VALUE = re.compile(r"^([A-Za-z_][\w.\-]*=)([^=]+)$")
_HEX_RUN = re.compile(r"^(0[xX])?[0-9a-fA-F]{8,}$|^0[xX][0-9a-fA-F]+$")

# Punctuation that separates the pieces of one token; kept in the template.
_PIECES = re.compile(r"([=:,/\[\](){}<>#@|;'\"`$*&?!+.]+)")
_DIGIT = re.compile(r"\d")
_EMPTY = {"()", "[]", "{}", "''", '""', "<>"}  # an empty value is still a value
_LEAD = "([{<'\"`"
_TRAIL = ")]}>'\".,;:!?`"


_WHOLE = re.compile(
    "|".join(f"(?:{p.pattern})" for p in (_URL, _EMAIL, _PATH, _HOST_PORT, _DOMAIN, _DOTTED_VALUE, _HEX_RUN)),
    re.IGNORECASE,
)


def _variable_whole(core: str) -> bool:
    return bool(_WHOLE.match(core) or ("-" in core and _UUID.fullmatch(core)))


def _mask_pieces(core: str) -> str:
    out: list[str] = []
    words = 0
    for piece in _PIECES.split(core):
        if not piece:
            continue
        if _PIECES.fullmatch(piece):
            out.append(piece)
        elif _DIGIT.search(piece) or _variable_whole(piece):
            if not out or out[-1] != WILDCARD:
                out.append(WILDCARD)
        else:
            words += 1
            out.append(piece)
    # "07:07:00", "2017-07-01": nothing but variables is one variable
    return "".join(out) if words else WILDCARD


def _edges(token: str) -> tuple[str, str, str]:
    """Opening brackets and quotes, the core, closing punctuation (string methods: linear)."""
    rest = token.lstrip(_LEAD)
    core = rest.rstrip(_TRAIL)
    return token[: len(token) - len(rest)], core, rest[len(core) :]


def _variable_file(masked: str) -> bool:
    """A file name with a variable part: "[2017-07-03]-io80211Family-002.pcapng" masked to "<*>.pcapng"."""
    if "=" in masked or ":" in masked:
        return False
    extension = _FILE_EXTENSION.search(masked)
    star = masked.find(WILDCARD)
    return (
        extension is not None
        and star >= 0
        and star + len(WILDCARD) <= extension.start()
        and not any(c.isspace() for c in masked[:star])
    )


@lru_cache(maxsize=1 << 16)
def mask_token(token: str) -> str:
    """The template form of one whitespace-delimited token."""
    if token == WILDCARD or token in _EMPTY:
        return WILDCARD
    lead, core, trail = _edges(token)
    if not core:
        return token
    if _variable_whole(core):
        return f"{lead}{WILDCARD}{trail}"
    key_value = _KEY_VALUE.match(core)
    if key_value and (_DIGIT.search(key_value.group(2)) or _variable_whole(key_value.group(2))):
        return f"{lead}{key_value.group(1)}{WILDCARD}{trail}"
    if not _DIGIT.search(core) and not any(c in core for c in "/:@.=\\"):
        return token
    masked = _mask_pieces(core)
    if _variable_file(masked):
        return f"{lead}{WILDCARD}{trail}"
    if masked.startswith(WILDCARD + ".") or masked.endswith("." + WILDCARD):
        # version-like and dotted numbers ("1.2.3", "v2.0") are one variable
        masked = re.sub(r"<\*>(\.<\*>|\.[A-Za-z]*\d+[A-Za-z]*)+", WILDCARD, masked)
    return f"{lead}{masked}{trail}"


_MONTH = r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?"
_WEEKDAY = r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,?"
# Spans that are one value however many tokens they take: written-out dates and quantities with units.
_SPANS = re.compile(
    rf"\b({_WEEKDAY}\s+)?{_MONTH}\s+\d{{1,2}}(,?\s+\d{{4}})?(\s+\d{{1,2}}:\d{{2}}(:\d{{2}}(\.\d+)?)?)?(\s+\d{{4}})?\b"
    # IPv6 and MAC addresses, wherever they sit inside a token
    r"|(?<![\w:.])(?=[0-9a-fA-F:]*\d)([0-9a-fA-F]{1,4}:){2,}:?[0-9a-fA-F]{1,4}(?![\w:])"
    # a path inside a token ("path:/var/log/x.txt")
    r"|(?<=[:=])/[\w.\-]+(/[^\s,;]*)+"
    r"|(?<![\w.-])[<>~]?[-+]?\d+(\.\d+)?\s?(B|[KMGT]i?B|bytes?|[mun]s|s|secs?|seconds?|mins?|minutes?|h|hours?|days?|%)"
    r"(?![\w<])",
)


def mask_tokens(message: str) -> list[str]:
    """Mask each token of a message and fold a run of variables into one, so lists of ids of any
    length match, and a value followed by its own rendering in brackets ("5 bytes (5 B)") is one."""
    out: list[str] = []
    if _DIGIT.search(message) or ":/" in message or "=/" in message:
        message = _SPANS.sub(WILDCARD, message)
    for token in message.split():
        masked = mask_token(token)
        if out and out[-1] == WILDCARD and masked.strip("()[]") == WILDCARD:
            continue
        out.append(masked)
    return out
