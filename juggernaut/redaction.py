"""The one scrubber of secrets, for everything shown, logged or stored that came from outside.

Secrets arrive from the environment (settings such as ``DATABASE_URL`` or an API key) and from callers
(bearer tokens in ``Authorization`` headers or ``?token=`` query strings), and come back in text from
outside: a provider's error that quotes the API key, urllib3's retry warning naming the webhook's
secret path. Every place that could echo them goes through here: Django's debug page, log lines
(``scrub``, with every pattern), daphne's access log, and stored or published data such as events and
provider errors (``scrub_payload``: the configured secrets and the certain patterns only, so ordinary
words such as "token limit" in a chat survive).

The configured secrets are the values of ``SECRET_SETTINGS`` (and, for URLs, their paths and queries,
where a webhook keeps its secret), wherever they appear.
"""

import logging
import re
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from daphne.access import AccessLogGenerator
from django.conf import settings
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

REDACTED = "[redacted]"
# Names that say "this value is a secret" (settings, environment variables, dict keys, variables).
SECRET_NAME_RE = re.compile(
    r"pass(word)?|secret|token|api[_-]?key|_key$|^key$|authorization|cookie|credential|signature|dsn|private",
    re.I,
)
_PATTERNS = [
    # A URL with a password: keep the scheme, user and host so the line still says where.
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]*:)[^@\s'\"/]+@", re.I), r"\1" + REDACTED + "@"),
    # Authorization header values, whatever the scheme.
    (re.compile(r"\b(bearer|basic|token|digest)(\s+)[^\s'\",;]+", re.I), r"\1\2" + REDACTED),
    # token= / access_token= / api_key= style query or form values.
    (
        re.compile(r"\b((?:access_|api_|auth_)?(?:token|key|secret|password)=)[^&\s'\"]+", re.I),
        r"\1" + REDACTED,
    ),
    # The HQ's own bearer tokens, wherever they appear.
    (re.compile(r"\bjhq_[A-Za-z0-9_-]{8,}"), "jhq_" + REDACTED),
]


# Settings whose values are secrets (a URL's path and query count too: a webhook's secret is there).
SECRET_SETTINGS = (
    "SECRET_KEY",
    "OPENROUTER_API_KEY",
    "GITHUB_TOKEN",
    "RAILWAY_TOKEN",
    "RAILWAY_API_TOKEN",
    "LOGS_ALERT_WEBHOOK_SECRET_URL",
)
MIN_SECRET_CHARS = 8  # shorter values would blank out ordinary words


def _secret_parts(value: str) -> list[str]:
    parts = [value]
    if "://" in value:
        try:
            url = urlsplit(value)
        except ValueError:
            return parts
        parts += [url.path, url.query, url.path.rstrip("/").rsplit("/", 1)[-1]]
    return [p for p in parts if len(p) >= MIN_SECRET_CHARS]


@lru_cache(maxsize=8)
def _secrets_re(values: tuple[str, ...]) -> re.Pattern | None:
    parts = sorted({p for v in values for p in _secret_parts(v)}, key=len, reverse=True)
    return re.compile("|".join(re.escape(p) for p in parts)) if parts else None


def scrub_secrets(text: str) -> str:
    """``text`` without the configured secrets' values (see ``SECRET_SETTINGS``)."""
    values = tuple(v for name in SECRET_SETTINGS if isinstance(v := getattr(settings, name, ""), str) and v)
    pattern = _secrets_re(values) if values else None
    return pattern.sub(REDACTED, text) if pattern else text


def scrub(text: str) -> str:
    """``text`` with every secret-looking value replaced by ``[redacted]``: for logs and debug pages."""
    text = scrub_secrets(text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def scrub_certain(text: str) -> str:
    """``text`` without the configured secrets, passwords in URLs and the HQ's own tokens: what is
    surely a secret, for text that is stored or published (model output, provider errors)."""
    text = scrub_secrets(text)
    for pattern, replacement in (_PATTERNS[0], _PATTERNS[-1]):
        text = pattern.sub(replacement, text)
    return text


# Payload keys whose values are secrets (narrower than SECRET_NAME_RE: payloads have "key" fields).
PAYLOAD_SECRET_KEY_RE = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|authorization|cookie|credential)", re.I
)


def scrub_payload(value: Any) -> Any:
    """Stored or published data (an event's payload, a provider's error metadata): values under
    secret-looking keys blanked, strings through ``scrub_certain``; lists come back as lists."""
    if isinstance(value, str):
        return scrub_certain(str(value))
    if isinstance(value, dict):
        return {
            k: (
                REDACTED if isinstance(k, str) and PAYLOAD_SECRET_KEY_RE.search(k) and v else scrub_payload(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub_payload(v) for v in value]
    return value


def scrub_value(value: Any) -> Any:
    """``scrub`` through strings, dicts (by key name too), lists and tuples."""
    if isinstance(value, str):
        return scrub(str(value))  # str() also resolves lazy strings
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and SECRET_NAME_RE.search(k) and v else scrub_value(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(scrub_value(v) for v in value)
    return value


class SecretsFilter(SafeExceptionReporterFilter):
    """Django's filter, also hiding URLs with passwords and secret-looking names anywhere on the page."""

    hidden_settings = re.compile(
        r"API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|DSN|CREDENTIAL|PRIVATE", re.I
    )

    def cleanse_setting(self, key, value):
        try:
            value = scrub_value(value)
        except Exception:  # a setting we cannot read through is not shown at all
            return self.cleansed_substitute
        return super().cleanse_setting(key, value)

    def get_safe_request_meta(self, request):
        meta = super().get_safe_request_meta(request)
        return {
            k: (self.cleansed_substitute if SECRET_NAME_RE.search(k) else scrub_value(v))
            for k, v in meta.items()
        }

    def get_traceback_frame_variables(self, request, tb_frame):
        return [
            (
                name,
                self.cleansed_substitute
                if SECRET_NAME_RE.search(name) or name == "raw"
                else _scrub_any(value),
            )
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]


def _scrub_any(value: Any) -> Any:
    """A frame variable: containers are scrubbed through; any other object by its repr (an exception
    whose message holds a URL, a client holding a key), which the debug page would print."""
    if isinstance(value, str | dict | list | tuple):
        return scrub_value(value)
    try:
        text = repr(value)
    except Exception:
        return value
    clean = scrub(text)
    return value if clean == text else clean


class SecretsReporter(ExceptionReporter):
    """The debug page's parts that Django does not filter: the URL, the query string, the message."""

    def get_traceback_data(self):
        data = super().get_traceback_data()
        if "request_GET_items" in data:
            data["request_GET_items"] = [
                (k, REDACTED if SECRET_NAME_RE.search(k) else scrub(v)) for k, v in data["request_GET_items"]
            ]
        for key in ("request_insecure_uri", "exception_value"):
            if isinstance(data.get(key), str):
                data[key] = scrub(data[key])
        return data


class RedactingLogFilter(logging.Filter):
    """A logging filter (on the handlers) that scrubs the formatted message and the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


class RedactingAccessLog(AccessLogGenerator):
    """daphne's access log without query-string tokens (``?token=`` opens a websocket)."""

    def write_entry(self, host, date, request, status=None, length=None, ident=None, user=None):
        super().write_entry(host, date, scrub(request), status, length, ident, user)
