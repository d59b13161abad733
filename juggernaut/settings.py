"""Settings for Juggernaut HQ, read once from the environment.

Every variable is documented in the README. With nothing set, the HQ runs on SQLite under ``var/``.
"""

import contextlib
import os
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}") from exc


def envfloat(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    try:
        return float(value) if value.strip() else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from exc


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def database_from_url(url: str, var_dir: Path) -> dict:
    """Turn ``DATABASE_URL`` into a Django database dict (SQLite or PostgreSQL)."""
    if not url:
        return _sqlite(var_dir / "juggernaut.sqlite3", var_dir)
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute.db, as dj-database-url reads them
        path = unquote(parts.path)[1:]
        return _sqlite(Path(path) if path else var_dir / "juggernaut.sqlite3", var_dir)
    if parts.scheme in ("postgres", "postgresql", "pgsql"):
        options = dict(parse_qsl(parts.query))
        pool = database_pool()
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "postgres",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            # A pool hands connections back at the end of each request, so they are not kept per thread.
            "CONN_MAX_AGE": 0 if pool else envint("DATABASE_CONN_MAX_AGE", 0),
            # With a pool, Django hands this to psycopg_pool as ``check=ConnectionPool.check_connection``:
            # every connection is tried before it is handed out, so one that died with a server restart
            # is discarded and replaced instead of failing the request that got it.
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {**options, **({"pool": pool} if pool else {})},
        }
    raise ImproperlyConfigured(f"DATABASE_URL scheme {parts.scheme!r} is not supported (sqlite or postgres)")


def database_pool() -> dict | None:
    """psycopg's connection pool for this process (None when ``DATABASE_POOL_MAX_SIZE`` is 0).

    Every process holds at most ``max_size`` connections, so the total is known: (web + jobs +
    workers processes) × max size must stay under the server's ``max_connections``. A request that
    finds the pool empty waits up to ``timeout`` seconds, then gets 503 with ``Retry-After``.

    A connection that cannot be opened (the server is down) is retried with doubling delays for at
    most ``reconnect_timeout`` seconds, then given up; the next request asks for a fresh one at once.
    So once the server is back, the pool hands out working connections within that interval.
    """
    max_size = envint("DATABASE_POOL_MAX_SIZE", 10)
    if max_size <= 0:
        return None
    return {
        "min_size": min(envint("DATABASE_POOL_MIN_SIZE", 1), max_size),
        "max_size": max_size,
        "timeout": envfloat("DATABASE_POOL_TIMEOUT", 10.0),
        "reconnect_timeout": envfloat("DATABASE_POOL_RECONNECT_SECONDS", 10.0),
    }


def _sqlite(path: Path, var_dir: Path) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": {
            # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock up front so two
            # writers queue on the busy timeout instead of failing on a lock upgrade.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        },
        "TEST": {"NAME": str(var_dir / f"test-{path.stem}.sqlite3")},
    }


def make_private(path: Path, *, directory: bool = False) -> None:
    """Create ``path`` readable by this user only (0700 / 0600), or tighten it if it exists: the
    SQLite file holds sessions and token hashes. SQLite gives its -wal and -shm files the same mode."""
    if directory:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    elif not path.exists() and path.parent.is_dir():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # an empty file is an empty database
    with contextlib.suppress(OSError):  # not ours to change (a mounted volume): leave it
        path.chmod(0o700 if directory else 0o600)


VAR_DIR = Path(env("HQ_VAR_DIR", str(BASE_DIR / "var")))
make_private(VAR_DIR, directory=True)

DEBUG = envbool("DEBUG", False)

SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off (set DEBUG=1 for development)")
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        # Private from its first byte: a file written first and chmodded after is readable in between.
        with (
            contextlib.suppress(FileExistsError),
            open(os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out,
        ):
            out.write(secrets.token_urlsafe(50))
    SECRET_KEY = key_file.read_text().strip()

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")
# Railway names each service's public domain; the HQ answers there, and Railway's deploy healthcheck
# asks with its own host name.
RAILWAY_PUBLIC_DOMAIN = env("RAILWAY_PUBLIC_DOMAIN")
if RAILWAY_PUBLIC_DOMAIN:
    ALLOWED_HOSTS += [RAILWAY_PUBLIC_DOMAIN, "healthcheck.railway.app"]
    CSRF_TRUSTED_ORIGINS.append(f"https://{RAILWAY_PUBLIC_DOMAIN}")
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_TZ = True
USE_I18N = False
LANGUAGE_CODE = "en-us"

# Feature apps, each switched on or off by ``<LABEL>_ENABLED`` (see juggernaut/features.py: a
# switched-off app stays installed but plugs nothing in). The kernel and its engine are not features.
FEATURE_APP_NAMES = ["chat", "selfheal", "logscrawler", "codehealth", "routing"]
FEATURE_APPS = {name: envbool(f"{name.upper()}_ENABLED", True) for name in FEATURE_APP_NAMES}
if not envbool("ENGINE_ENABLED", True):
    raise ImproperlyConfigured(
        "ENGINE_ENABLED=0: the engine cannot be switched off (feature apps keep foreign keys to its tasks)"
    )

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "django_q",
    "ninja",
    "axes",
    "juggernaut",
    "juggernaut.engine",
    *FEATURE_APP_NAMES,
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "juggernaut.middleware.request_guard",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "juggernaut.middleware.api_error_shape",
    # Last: turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "juggernaut.urls"
ASGI_APPLICATION = "juggernaut.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "juggernaut.views.hq_context",
            ],
        },
    }
]

DATABASE_URL = env("DATABASE_URL")
DATABASES = {"default": database_from_url(DATABASE_URL, VAR_DIR)}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    make_private(Path(DATABASES["default"]["NAME"]))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# The first operator, created by `make run` when there is none (a password is generated if unset).
HQ_ADMIN_USER = env("HQ_ADMIN_USER", "operator")
HQ_ADMIN_PASSWORD = env("HQ_ADMIN_PASSWORD")
# `make run` restarts a child that dies after this many seconds, doubling per recent exit.
HQ_RESTART_BACKOFF_SECONDS = envfloat("HQ_RESTART_BACKOFF_SECONDS", 1.0)
# ... and restarts one whose heartbeat has been silent this long (hung: stopped, deadlocked).
HQ_HUNG_SECONDS = envint("HQ_HUNG_SECONDS", 45)
# Set by `make run` for a child it watches: the child touches this file at every heartbeat.
HQ_HEARTBEAT_FILE = env("HQ_HEARTBEAT_FILE")
HQ_HOST = env("HQ_HOST", "127.0.0.1")
PORT = envint("PORT", 8000)

# Sign-in throttling (django-axes), on /login/ and /admin/login/ alike: after HQ_LOGIN_FAILURE_LIMIT
# wrong passwords for one user name from one address, that name is locked out from that address for
# HQ_LOGIN_LOCKOUT_MINUTES (name and address together: a shared proxy's address locks out no one else);
# after HQ_LOGIN_NAME_FAILURE_LIMIT from any addresses, the name is locked out from everywhere. A
# correct sign-in clears its address's count. See juggernaut.auth.signin_lockout_parameters.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = envint("HQ_LOGIN_FAILURE_LIMIT", 5)
HQ_LOGIN_NAME_FAILURE_LIMIT = envint("HQ_LOGIN_NAME_FAILURE_LIMIT", 20)
AXES_COOLOFF_TIME = timedelta(minutes=envint("HQ_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = "juggernaut.auth.signin_lockout_parameters"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "juggernaut.views.signin_locked"
# The client address is REMOTE_ADDR: daphne sets it from X-Forwarded-For only behind a proxy (HQ_BEHIND_PROXY).

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "overview"
LOGOUT_REDIRECT_URL = "login"

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT.mkdir(exist_ok=True)
# Until collectstatic has filled STATIC_ROOT (development, tests), WhiteNoise serves from the finders.
WHITENOISE_USE_FINDERS = DEBUG or not any(STATIC_ROOT.iterdir())
# collectstatic (a deployment runs it at build time) names each file by its content's hash.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "juggernaut.staticfiles.HashedStaticFilesStorage"},
}

# Production hardening; all of it can be relaxed from the environment behind a TLS-terminating proxy.
HQ_BEHIND_PROXY = envbool("HQ_BEHIND_PROXY", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HQ_BEHIND_PROXY else None
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^api/health$"]
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
# Only the HQ's own scripts, styles and images (no inline script or style, no eval); websockets and
# fetches to this origin only. The API docs page and the admin need nothing more.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# One process needs no cross-process layer: every process writes the event log and each web
# process's relay fans out locally.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels.layers.InMemoryChannelLayer",
        "CONFIG": {"capacity": 5000, "expiry": 60},
    }
}

# Live event log.
EVENTS_RETENTION_DAYS = envint("EVENTS_RETENTION_DAYS", 14)
# Retention prunes (events, log lines) delete this many rows per statement and transaction.
HQ_PRUNE_BATCH = envint("HQ_PRUNE_BATCH", 2000)
EVENTS_POLL_SECONDS = envfloat(
    "EVENTS_POLL_SECONDS", 1.0 if DATABASES["default"]["ENGINE"].endswith("postgresql") else 0.1
)
EVENTS_SSE_PING_SECONDS = envfloat("EVENTS_SSE_PING_SECONDS", 15.0)
# How often each web process checks that the tokens of its open websockets and SSE streams still work.
HQ_TOKEN_CHECK_SECONDS = envfloat("HQ_TOKEN_CHECK_SECONDS", 2.0)
# Open HQ pages re-render their time-dependent fragments this often (states that become true by the
# clock alone, such as a silent worker, reach the screen without any event).
HQ_REFRESH_SECONDS = envfloat("HQ_REFRESH_SECONDS", 2.0)

# django-q2: the ORM broker keeps the whole system on the one database.
Q_TIMEOUT = envint("Q_TIMEOUT", 300)
Q_CLUSTER = {
    "name": "juggernaut",
    "orm": "default",
    "broker_class": "juggernaut.brokers.HealingORM",  # polls on through a database restart
    "workers": envint("Q_WORKERS", 2),
    "timeout": Q_TIMEOUT,
    "retry": Q_TIMEOUT + 60,
    "max_attempts": 1,
    "catch_up": False,
    "poll": 0.5,
    "save_limit": 500,
    "ack_failures": True,
    "label": "Jobs",
}

# Engine.
ENGINE_LEASE_SECONDS = envint("ENGINE_LEASE_SECONDS", 60)
ENGINE_TICK_SECONDS = envint("ENGINE_TICK_SECONDS", 15)
ENGINE_BLOCKED_ESCALATE_MINUTES = envint("ENGINE_BLOCKED_ESCALATE_MINUTES", 30)
ENGINE_BACKOFF_BASE_SECONDS = envint("ENGINE_BACKOFF_BASE_SECONDS", 10)
ENGINE_MAX_ATTEMPTS = envint("ENGINE_MAX_ATTEMPTS", 3)
ENGINE_HEARTBEAT_SECONDS = envint("ENGINE_HEARTBEAT_SECONDS", 10)
# The stuck detector reports a queue whose oldest due task has waited longer than this.
ENGINE_STUCK_QUEUE_MINUTES = envint("ENGINE_STUCK_QUEUE_MINUTES", 10)

# Request bodies above this are refused with 413 (API and forms alike), except on paths with a limit
# of their own (log ingest: LOGS_INGEST_MAX_BYTES); refused while the body arrives, before any of it
# is kept.
HQ_MAX_BODY_BYTES = envint("HQ_MAX_BODY_BYTES", 2_621_440)
DATA_UPLOAD_MAX_MEMORY_SIZE = HQ_MAX_BODY_BYTES
# The Retry-After of a 503 when the database has no connection to give.
HQ_RETRY_AFTER_SECONDS = envint("HQ_RETRY_AFTER_SECONDS", 2)
# Logs crawler (logscrawler/).
RAILWAY_API_URL = env("RAILWAY_API_URL", "https://backboard.railway.com/graphql/v2")
RAILWAY_TOKEN = env("RAILWAY_TOKEN")  # a project token, sent as Project-Access-Token
RAILWAY_API_TOKEN = env("RAILWAY_API_TOKEN")  # an account or team token, sent as a bearer token
LOGS_CRAWL_MINUTES = envint("LOGS_CRAWL_MINUTES", 5)
# A crawl beats before every request; one silent this long died with its process, and the next crawl
# closes it as failed and takes over (instead of answering "another crawl is running").
LOGS_CRAWL_LEASE_SECONDS = envint("LOGS_CRAWL_LEASE_SECONDS", 45)
# The plan's hourly request limit; each crawl spends at most its share (limit x minutes / 60).
LOGS_RAILWAY_HOURLY_REQUESTS = envint("LOGS_RAILWAY_HOURLY_REQUESTS", 1000)
LOGS_CRAWL_PAGE = envint("LOGS_CRAWL_PAGE", 500)
LOGS_RETENTION_DAYS = envint("LOGS_RETENTION_DAYS", 14)
LOGS_INGEST_MAX_BYTES = envint("LOGS_INGEST_MAX_BYTES", 10 * 1024 * 1024)
# An ingest answer lists at most this many rejected lines (the first ones), and counts the rest.
LOGS_INGEST_MAX_REJECTED = envint("LOGS_INGEST_MAX_REJECTED", 100)
# Ingest stores (and commits) a service's lines this many at a time, so no request holds a lock long.
LOGS_INGEST_BATCH_LINES = envint("LOGS_INGEST_BATCH_LINES", 500)
# Ingest creates a service named for the first time; off, its lines are refused with where to add it.
LOGS_INGEST_CREATE_SERVICES = envbool("LOGS_INGEST_CREATE_SERVICES", True)
# A stored line longer than this is cut, with a marker saying how much was dropped.
LOGS_MAX_LINE_CHARS = envint("LOGS_MAX_LINE_CHARS", 16 * 1024)
# A line whose parse takes longer than this is stored as one "unparsable" event (a backstop: every
# pattern that reads log text runs in linear time).
LOGS_PARSE_BUDGET_MS = envint("LOGS_PARSE_BUDGET_MS", 100)
# Alert rules: a spike is >= FACTOR x the fingerprint's baseline rate and >= MIN in the last window;
# sustained 5xx is >= PERCENT of HTTP responses for WINDOWS consecutive windows.
LOGS_ALERT_WINDOW_MINUTES = envint("LOGS_ALERT_WINDOW_MINUTES", 5)
LOGS_SPIKE_FACTOR = envfloat("LOGS_SPIKE_FACTOR", 5.0)
LOGS_SPIKE_MIN = envint("LOGS_SPIKE_MIN", 20)
LOGS_SPIKE_BASELINE_MINUTES = envint("LOGS_SPIKE_BASELINE_MINUTES", 60)
LOGS_5XX_PERCENT = envfloat("LOGS_5XX_PERCENT", 5.0)
LOGS_5XX_WINDOWS = envint("LOGS_5XX_WINDOWS", 3)
LOGS_5XX_MIN_REQUESTS = envint("LOGS_5XX_MIN_REQUESTS", 20)
# Optional Slack-compatible incoming webhook for alerts (a secret: never shown).
# "SECRET" in the name hides it on debug pages (Django masks such settings).
LOGS_ALERT_WEBHOOK_SECRET_URL = env("LOGS_ALERT_WEBHOOK_URL")

# Code health (codehealth/): GitHub's REST API and the scans, reports and auto-PRs built on it.
GITHUB_API_URL = env("GITHUB_API_URL", "https://api.github.com")
GITHUB_TOKEN = env("GITHUB_TOKEN")  # a secret: sent only as a header, never in URLs, pages or logs
# A rate-limit wait longer than this is not slept through: the call fails, retryable, with its reset time.
GITHUB_MAX_WAIT_SECONDS = envint("GITHUB_MAX_WAIT_SECONDS", 60)
GITHUB_MAX_PAGES = envint("GITHUB_MAX_PAGES", 20)
# Artifact downloads: the zip itself, and what it may unpack to (a zip bomb stops at the cap).
GITHUB_ARTIFACT_MAX_BYTES = envint("GITHUB_ARTIFACT_MAX_BYTES", 50 * 1024 * 1024)
GITHUB_ARTIFACT_MAX_UNZIPPED_BYTES = envint("GITHUB_ARTIFACT_MAX_UNZIPPED_BYTES", 200 * 1024 * 1024)
GITHUB_CLONE_URL = env("GITHUB_CLONE_URL", "https://github.com")  # where repositories are cloned from
CODEHEALTH_MAX_OPEN_PRS = envint("CODEHEALTH_MAX_OPEN_PRS", 3)
# Stale findings at least this sure become stale_code_items for review.
CODEHEALTH_STALE_MIN_CONFIDENCE = envint("CODEHEALTH_STALE_MIN_CONFIDENCE", 90)
# The Overview's code-health line: amber below the first score, red below the second
CODEHEALTH_SCORE_WARN_BELOW = envint("CODEHEALTH_SCORE_WARN_BELOW", 70)
CODEHEALTH_SCORE_ERROR_BELOW = envint("CODEHEALTH_SCORE_ERROR_BELOW", 40)
CODEHEALTH_CLONE_TIMEOUT_SECONDS = envint("CODEHEALTH_CLONE_TIMEOUT_SECONDS", 300)
CODEHEALTH_CLONE_DIR = env("CODEHEALTH_CLONE_DIR", str(BASE_DIR / "var" / "codehealth"))
# A scan's analysers run in a child process on a scratch copy of the checkout (codehealth.sandbox):
# killed past the deadline, capped in address space, and, when the HQ runs as root, as this user.
CODEHEALTH_SCAN_TIMEOUT_SECONDS = envint("CODEHEALTH_SCAN_TIMEOUT_SECONDS", 180)
CODEHEALTH_SCAN_LEASE_SECONDS = envint("CODEHEALTH_SCAN_LEASE_SECONDS", 45)
CODEHEALTH_SCAN_MEMORY_MB = envint("CODEHEALTH_SCAN_MEMORY_MB", 2048)
CODEHEALTH_SCAN_USER = env("CODEHEALTH_SCAN_USER", "nobody")
# Directories under which an admin may register local repositories (absolute paths, comma-separated);
# empty: no local path may be registered. The HQ's own directory and HQ_VAR_DIR are always refused.
CODEHEALTH_LOCAL_ROOTS = envlist("CODEHEALTH_LOCAL_ROOTS")
# Dependency audit. Vulnerabilities come from an OSV-format snapshot (a JSON list of OSV records, or the
# querybatch shape), else from one committed in the checkout; without either the part is "not run".
# Each scan first refreshes the snapshot from OSV's API for the packages the checkout declares, when
# reachable; offline the snapshot is used as the last refresh left it.
CODEHEALTH_OSV_SNAPSHOT = env("CODEHEALTH_OSV_SNAPSHOT", str(BASE_DIR / "var" / "codehealth-osv.json"))
CODEHEALTH_OSV_URL = env("CODEHEALTH_OSV_URL", "https://api.osv.dev")
# Outdated packages: the registries' JSON APIs, each answer cached for a day. The lookups switch turns
# all of the audit's network lookups (OSV and the registries) on or off: off, the snapshot only.
CODEHEALTH_REGISTRY_LOOKUPS = envbool("CODEHEALTH_REGISTRY_LOOKUPS", True)
CODEHEALTH_PYPI_URL = env("CODEHEALTH_PYPI_URL", "https://pypi.org/pypi")
CODEHEALTH_NPM_URL = env("CODEHEALTH_NPM_URL", "https://registry.npmjs.org")
CODEHEALTH_REGISTRY_CACHE_HOURS = envint("CODEHEALTH_REGISTRY_CACHE_HOURS", 24)

# API tokens: bearer tokens are shown once and stored as a SHA-256 hash.
API_TOKEN_DEFAULT_DAYS = envint("API_TOKEN_DEFAULT_DAYS", 90)

# Outbound HTTP (juggernaut.http).
HTTP_TIMEOUT_SECONDS = envfloat("HTTP_TIMEOUT_SECONDS", 15.0)
HTTP_MAX_RETRIES = envint("HTTP_MAX_RETRIES", 3)
# URLs a user or a repository supplies (juggernaut.urlguard): loopback and private addresses only when
# allowed here (metadata and link-local addresses never), and each request's total wall time.
HQ_OUTBOUND_ALLOW_PRIVATE = envbool("HQ_OUTBOUND_ALLOW_PRIVATE", False)
HQ_OUTBOUND_DEADLINE_SECONDS = envfloat("HQ_OUTBOUND_DEADLINE_SECONDS", 30.0)

# Debug pages and log lines hide secrets: settings and variables with secret-looking names, URLs with
# passwords, Authorization values and ?token= query strings.
DEFAULT_EXCEPTION_REPORTER_FILTER = "juggernaut.redaction.SecretsFilter"
DEFAULT_EXCEPTION_REPORTER = "juggernaut.redaction.SecretsReporter"
# LLM routing (routing app): OpenRouter or any OpenAI-compatible server.
# Self-heal: diagnosis, bounded repairs and the auto-heal schedule (0: off until the operator turns it on).
SELFHEAL_AUTO_MINUTES = envint("SELFHEAL_AUTO_MINUTES", 0)
SELFHEAL_CHECK_TIMEOUT_SECONDS = envfloat("SELFHEAL_CHECK_TIMEOUT_SECONDS", 3.0)
SELFHEAL_MAX_ROWS_PER_RUN = envint("SELFHEAL_MAX_ROWS_PER_RUN", 500)
SELFHEAL_MAX_ROWS_PER_HOUR = envint("SELFHEAL_MAX_ROWS_PER_HOUR", 2000)
SELFHEAL_MAX_RUNS_PER_HOUR = envint("SELFHEAL_MAX_RUNS_PER_HOUR", 6)
SELFHEAL_MANUAL_RUNS_PER_HOUR = envint("SELFHEAL_MANUAL_RUNS_PER_HOUR", 3)
SELFHEAL_EVENT_BACKLOG = envint("SELFHEAL_EVENT_BACKLOG", 200_000)
SELFHEAL_STALE_PAUSE_HOURS = envint("SELFHEAL_STALE_PAUSE_HOURS", 24)
# A running diagnosis or repair beats at every step; one silent this long died with its process and is
# closed as failed (by the next run, or the minute's sweep).
SELFHEAL_LEASE_SECONDS = envint("SELFHEAL_LEASE_SECONDS", 45)

OPENROUTER_BASE_URL = env("OPENROUTER_BASE_URL", "https://openrouter.ai/api/v1")
OPENROUTER_API_KEY = env("OPENROUTER_API_KEY")
OPENROUTER_APP_URL = env("OPENROUTER_APP_URL", "https://github.com/juggernaut-hq")  # sent as HTTP-Referer
OPENROUTER_APP_TITLE = env("OPENROUTER_APP_TITLE", "Juggernaut HQ")  # sent as X-Title
OPENROUTER_CONNECT_TIMEOUT_SECONDS = envfloat("OPENROUTER_CONNECT_TIMEOUT_SECONDS", 10.0)
OPENROUTER_IDLE_TIMEOUT_SECONDS = envfloat("OPENROUTER_IDLE_TIMEOUT_SECONDS", 60.0)
OPENROUTER_GENERATION_ATTEMPTS = envint("OPENROUTER_GENERATION_ATTEMPTS", 4)
# OpenRouter's own request fields (models, provider); off for a server that rejects unknown fields.
OPENROUTER_EXTENSIONS = envbool("OPENROUTER_EXTENSIONS", True)
# A call whose worst case does not fit a budget gets max_tokens lowered, down to this, before refusal.
ROUTING_MIN_USEFUL_TOKENS = envint("ROUTING_MIN_USEFUL_TOKENS", 256)

# Chat (chat/): where runs execute ("jobs": a django-q2 job; "engine": a chat_run engine task;
# "manual": nobody starts them, for tests that drive the loop), and each run's default limits
# (a session can override them; a mode's policy gives the iteration limit).
CHAT_RUNNER = env("CHAT_RUNNER", "jobs")
CHAT_MAX_STEPS = envint("CHAT_MAX_STEPS", 40)
CHAT_MAX_WALL_SECONDS = envint("CHAT_MAX_WALL_SECONDS", 240)  # below Q_TIMEOUT: a job is killed after that
CHAT_MAX_COST_USD = envfloat("CHAT_MAX_COST_USD", 0.5)
CHAT_MAX_RETRIES_PER_FAILURE = envint("CHAT_MAX_RETRIES_PER_FAILURE", 2)
CHAT_NO_NEW_INFO_STEPS = envint("CHAT_NO_NEW_INFO_STEPS", 6)
# Retries of one model call in a row (any errors); the same provider error also counts, per fingerprint,
# in the run's retries budget (CHAT_MAX_RETRIES_PER_FAILURE).
CHAT_MODEL_RETRIES = envint("CHAT_MODEL_RETRIES", 3)
# Modes whose tasks need tools: there, N answers in a row without a tool call (before any tool ran) climb
# the no-tool-calls guardrail (observe, steer, force a tool call, stop as stuck_loop at N).
CHAT_TOOL_MODES = envlist("CHAT_TOOL_MODES", "ops")
CHAT_NO_TOOL_TURNS = envint("CHAT_NO_TOOL_TURNS", 4)
# Percent of each limit (steps, model calls, wall time, cost, retries) at which a budget event says so.
CHAT_BUDGET_THRESHOLDS = [int(p) for p in envlist("CHAT_BUDGET_THRESHOLDS", "50,80,100")]
# Tokens reach the event log at most this often (one event per this many seconds of streaming).
CHAT_TOKEN_FLUSH_SECONDS = envfloat("CHAT_TOKEN_FLUSH_SECONDS", 0.075)
# A running run checks for Stop this often, writes its heartbeat that often, and is closed as
# interrupted when its heartbeat is older than the lease.
CHAT_CANCEL_POLL_SECONDS = envfloat("CHAT_CANCEL_POLL_SECONDS", 0.2)
CHAT_HEARTBEAT_SECONDS = envfloat("CHAT_HEARTBEAT_SECONDS", 2.0)
CHAT_RUN_LEASE_SECONDS = envint("CHAT_RUN_LEASE_SECONDS", 20)
# A run no process picked up within this many seconds is handed to the runner once more (its job may have
# failed on a dead connection, or been lost), and closed as interrupted after the same time again.
CHAT_QUEUED_TIMEOUT_SECONDS = envint("CHAT_QUEUED_TIMEOUT_SECONDS", 120)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"redact": {"()": "juggernaut.redaction.RedactingLogFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's default config gives "django" a console handler of its own: one handler, filtered.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.channels.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        # urllib3 logs its retries with the URL's path (a webhook's secret): scrubbed at the source, so
        # no handler, whoever adds it, sees the path.
        "urllib3.connectionpool": {"filters": ["redact"]},
        "urllib3.util.retry": {"filters": ["redact"]},
    },
}
