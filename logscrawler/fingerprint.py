"""Fingerprints: one id per kind of log event, stable while its template generalises.

A message is tokenised on whitespace and its variable tokens masked (``masking``); messages with
the same masked tokens share a template. A position whose values keep changing while everything
else stays (user names, program names) becomes a variable: those templates merge into the oldest,
whose id is kept. The id is given once, when a template is born, and never changes as the template
widens. Stack traces are grouped by exception type and in-app frames (``traces``), never by their
message text. Raw lines lose their header first (``header``).
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from hashlib import blake2b

from logscrawler.header import split_header
from logscrawler.masking import WILDCARD, mask_tokens
from logscrawler.traces import parse_trace

# Bump when a change to the rules would regroup stored messages; stored fingerprints carry it.
GROUPING_VERSION = "3"
VARIABLE_AFTER = 4
MIN_CONSTANTS = 2
# Longer templates never widen position by position: indexing one costs the square of its length, and
# a message that long is a dump, not a sentence whose words vary.
MAX_INDEXED_TOKENS = 100
# A variable with at most punctuation around it: "<*>", "<*>,", "(<*>)".
_BARE_VARIABLE = re.compile(r"^[(\[{<'\"]*<\*>[)\]}>'\".,;:!?]*$")


@dataclass(slots=True)
class Template:
    id: str
    tokens: list[str]
    size: int = 0
    order: int = 0
    general: bool = False  # has positions made variable by merging

    @property
    def constants(self) -> int:
        return sum(1 for t in self.tokens if t != WILDCARD)

    @property
    def text(self) -> str:
        return " ".join(self.tokens)


def fingerprint_id(seed: str) -> str:
    """A short stable id: the hash of the grouping version and the first template of a group."""
    return blake2b(f"{GROUPING_VERSION}\x00{seed}".encode(), digest_size=8).hexdigest()


@dataclass
class TemplateStore:
    """In-memory templates of one stream; ``match`` is the whole online algorithm.

    Messages with the same masked tokens share a template. A position becomes a variable once
    ``VARIABLE_AFTER`` templates are alike everywhere else (user names, program names, error
    codes without digits): they merge into the oldest, whose id stays; the others become aliases.
    Two or three alternatives at a position ("startup"/"shutdown") stay apart: they are words of
    different messages far more often than values of one.
    """

    templates: dict[str, Template] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    _exact: dict[str, str] = field(default_factory=dict)
    _general: dict[int, list[Template]] = field(default_factory=dict)
    _skeletons: dict[tuple, list[str]] = field(default_factory=dict)
    _member_of: dict[str, list[tuple]] = field(default_factory=dict)
    _shapes: dict[tuple, list[str]] = field(default_factory=dict)  # see _shape

    def resolve(self, template_id: str) -> str:
        while template_id in self.aliases:
            template_id = self.aliases[template_id]
        return template_id

    def is_variant(self, template_id: str) -> bool:
        """True when the template differs from another live one at a single position: it may yet
        merge into it (a value seen too few times to call it a variable), so it is not news."""
        for skeleton in self._member_of.get(template_id, ()):
            if len({self.resolve(i) for i in self._skeletons[skeleton]}) > 1:
                return True
        return False

    def add(self, template: Template) -> None:
        """Load a stored template (its id kept) so matching continues where it left off."""
        self.templates[template.id] = template
        self._exact[template.text] = template.id
        self._shapes.setdefault(_shape(template.tokens), []).append(template.id)
        if template.general:
            self._general.setdefault(len(template.tokens), []).append(template)
        self._index(template)

    def match(self, tokens: list[str]) -> Template:
        key = " ".join(tokens)
        found = self._exact.get(key)
        if found is None:
            template = self._match_general(tokens) or self._create(key, tokens)
            self._exact[key] = template.id
        else:
            template = self.templates[self.resolve(found)]
        template.size += 1
        return template

    def _match_general(self, tokens: list[str]) -> Template | None:
        best = None
        for candidate in self._general.get(len(tokens), ()):
            if all(t in (x, WILDCARD) for t, x in zip(candidate.tokens, tokens, strict=True)) and (
                best is None or candidate.constants > best.constants
            ):
                best = candidate
        return best

    def _create(self, key: str, tokens: list[str]) -> Template:
        template = Template(id=fingerprint_id(key), tokens=list(tokens), order=len(self.templates))
        self.add(template)
        twin = self._partial_twin(template)
        if twin is not None and self.resolve(template.id) == template.id:
            self._merge(sorted((twin.id, template.id), key=lambda i: self.templates[i].order))
        return self.templates[self.resolve(template.id)]

    def _partial_twin(self, template: Template) -> Template | None:
        """A live template alike everywhere except where one has a variable and the other a token that
        is partly one ("LOCAL(<*>)," where the other has "<*>,"): both hold values of the same slot."""
        shape = _shape(template.tokens)
        for other_id in self._shapes.get(shape, ()):
            other = self.templates.get(other_id)
            if other is None or other is template or _shape(other.tokens) != shape:
                continue  # merged away, or widened since
            slots = constants = 0
            for a, b in zip(other.tokens, template.tokens, strict=True):
                if a == b:
                    constants += a != WILDCARD
                elif WILDCARD in a and WILDCARD in b and (_BARE_VARIABLE.match(a) or _BARE_VARIABLE.match(b)):
                    slots += 1
                else:
                    break
            else:
                if slots and constants >= MIN_CONSTANTS:
                    return other
        return None

    def _index(self, template: Template) -> None:
        tokens = template.tokens
        if template.constants < MIN_CONSTANTS + 1 or len(tokens) > MAX_INDEXED_TOKENS:
            return
        for j, token in enumerate(tokens):
            if token == WILDCARD:
                continue
            skeleton = (len(tokens), j, *tokens[:j], *tokens[j + 1 :])
            bucket = self._skeletons.setdefault(skeleton, [])
            self._member_of.setdefault(template.id, []).append(skeleton)
            live = {self.resolve(i) for i in bucket}
            live.add(template.id)
            bucket[:] = sorted(live, key=lambda i: self.templates[i].order)
            if len(bucket) >= VARIABLE_AFTER:
                self._merge(bucket)
                return

    def _merge(self, ids: list[str]) -> None:
        keep, *others = (self.templates[i] for i in ids)
        for other in others:
            keep.tokens = [t if t == o else WILDCARD for t, o in zip(keep.tokens, other.tokens, strict=True)]
            keep.size += other.size
            self.aliases[other.id] = keep.id
            del self.templates[other.id]
            general = self._general.get(len(other.tokens), [])
            if other in general:
                general.remove(other)
        keep.general = True
        general = self._general.setdefault(len(keep.tokens), [])
        if keep not in general:
            general.append(keep)
        # the widened template may now equal another one: they are the same kind of event
        same = self._exact.get(keep.text)
        if same is not None and self.resolve(same) != keep.id:
            twin = self.resolve(same)
            first, second = sorted((keep.id, twin), key=lambda i: self.templates[i].order)
            self._merge([first, second])
            return
        self._exact[keep.text] = keep.id
        self._shapes.setdefault(_shape(keep.tokens), []).append(keep.id)
        self._index(keep)


def _shape(tokens: list[str]) -> tuple:
    """The tokens with every token holding a variable alike: partial twins share their shape."""
    return tuple(WILDCARD if WILDCARD in t else t for t in tokens)


# "GET /api/orders/42?x=1 HTTP/1.1" 500 ... / GET /api/orders/42 500 12ms: method, path, then a status
_ACCESS = re.compile(
    r'^"?(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (/[^\s?"]{0,2000}+)[^\s"]{0,2000}+(?: HTTP/[\d.]{1,5}+)?"? ([1-5])\d\d\b'
)
# A path segment that is a value: digits anywhere, a uuid, or a long hex run
_ID_SEGMENT = re.compile(r"^(?=.*\d)[\w.\-~%:@+]+$|^[0-9a-fA-F]{8,}$")


def access_route(message: str) -> str | None:
    """``GET /api/orders/{id} → 5xx`` for an access line (docs/logs.md), None for anything else."""
    match = _ACCESS.match(message)
    if match is None:
        return None
    method, path, status = match.groups()
    segments = ["{id}" if _ID_SEGMENT.match(s) else s for s in path.split("/")]
    return f"{method} {'/'.join(segments)} → {status}xx"


def message_tokens(message: str) -> list[str]:
    """The masked tokens of a bare message."""
    return mask_tokens(message)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    id: str
    template: str
    exception_type: str = ""


@dataclass
class Fingerprinter:
    """Fingerprints the events of one stream (bare messages, or raw lines when ``raw``).

    Holds its templates in memory; ``store`` can be preloaded with stored templates so ids carry on
    across runs. An event with a stack trace is grouped by the trace, anything else by template.
    """

    raw: bool = False
    store: TemplateStore = field(default_factory=TemplateStore)

    def fingerprint(self, text: str, *, unparsable: bool = False) -> Fingerprint:
        if unparsable:  # its parse ran over budget: reading it again would too
            return Fingerprint(fingerprint_id("unparsable"), "unparsable line")
        trace = parse_trace(text)
        if trace is not None:
            key = trace.key()
            return Fingerprint(fingerprint_id(f"trace\x00{key}"), key, trace.exception_type)
        first_line, _, rest = text.partition("\n")
        message = split_header(first_line).message if self.raw else first_line.strip()
        access = access_route(message)
        if access is not None:
            return Fingerprint(fingerprint_id(f"access\x00{access}"), access)
        tokens = message_tokens(message)
        if rest:
            # a heading with indented detail lines: the first detail says which error it is
            detail = rest.split("\n", 1)[0].strip()
            tokens += ["\u21b5", *message_tokens(detail[:500])] if detail else []
        template = self.store.match(tokens)
        return Fingerprint(template.id, template.text)

    def fingerprint_all(self, lines: Iterable[str]) -> list[str]:
        """The final fingerprint id of each line: merges made later in the stream apply to all."""
        ids = [self.fingerprint(line).id for line in lines]
        return [self.store.resolve(i) for i in ids]
