"""The one guard for every outbound URL a user or a repository supplies.

A repository's ``schema_url``, the alert webhook, the package registries a manifest names: the HQ
fetches them from inside its own network, next to a cloud metadata service that hands out the
machine's credentials. So a guarded session (``guarded_session``):

- resolves each host once, in the connection itself, refuses the connection unless every address is
  global unicast, and connects to the address it checked (no second lookup for a rebinding DNS server
  to answer differently); TLS still names and verifies the host;
- decodes the IPv6 forms that carry an IPv4 address (mapped, NAT64, 6to4, Teredo) and checks that;
- refuses the known metadata addresses always, and loopback and private ones unless
  ``HQ_OUTBOUND_ALLOW_PRIVATE`` is on;
- bounds each request's total wall time (``deadline``; a watchdog shuts the socket down), besides the
  per-read timeout, and its body size (``max_bytes``);
- follows at most 5 redirects, each hop connecting through the same check;
- ignores proxy settings from the environment (a proxy would resolve the host where we cannot look).

Every refusal is one error, ``OutboundRefused``, whose message says why in words; callers turn it into
their own errors.
"""

import contextlib
import ipaddress
import socket
import threading
import time
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from juggernaut.http import HttpSession, url_shown

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata and host services: refused whatever the settings say.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle (IPv4)
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure's wire server (a public address)
        "192.0.0.192",  # Oracle Cloud
    )
)
# Allowed only with HQ_OUTBOUND_ALLOW_PRIVATE (loopback is checked on its own).
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundRefused(Exception):
    """A URL the HQ will not fetch, or a fetch that overran its deadline or size; ``str()`` says why."""


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, Teredo's client), if any."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    return None


def address_refusal(address: str, *, allow_private: bool | None = None) -> str:
    """What ``address`` is when the HQ does not connect to it ("a cloud metadata address"); "" when
    it may."""
    if allow_private is None:
        allow_private = settings.HQ_OUTBOUND_ALLOW_PRIVATE
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    inner = _embedded_ipv4(ip)
    if inner is not None:
        why = address_refusal(str(inner), allow_private=allow_private)
        return f"a form of {inner}, {why}" if why else ""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_multicast or ip.is_unspecified or ip.is_link_local:
        return "a link-local, multicast or unspecified address"
    if ip.is_loopback or any(ip in network for network in PRIVATE_NETWORKS if network.version == ip.version):
        return "" if allow_private else "a loopback or private address (HQ_OUTBOUND_ALLOW_PRIVATE is off)"
    if not ip.is_global or (ip.version == 6 and ip not in GLOBAL_UNICAST_V6):
        return "not a global unicast address"
    return ""


def host_resolve(host: str, port: int) -> list[tuple]:
    """``getaddrinfo`` answers for ``host``, once, refused unless every address may be connected to."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for info in infos:
        address = info[4][0]
        why = address_refusal(address)
        if why:
            said = f"{host} is" if host.strip("[]") == address else f"{host} resolves to {address},"
            raise OutboundRefused(f"{said} {why}")
    return infos


class _Watch:
    """One request's deadline: a duplicate of each socket it uses (the duplicate outlives TLS wrapping
    and the connection's own close), all shut down by a timer when the deadline passes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self.expired = False
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()

    def remaining(self) -> float:
        return self.ends - time.monotonic()

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        try:
            twin = socket.fromfd(sock.fileno(), sock.family, sock.type)
        except OSError:
            return
        with self.lock:
            self.sockets.append(twin)
            expired = self.expired
        if expired:
            self._shut(twin)

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            sockets = list(self.sockets)
        for sock in sockets:
            self._shut(sock)

    def close(self) -> None:
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            sock.close()

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        # Shutting the socket down (not closing a descriptor) ends a blocked read at once, TLS too.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


_local = threading.local()


def _current_watch() -> _Watch | None:
    return getattr(_local, "watch", None)


class _GuardedConnectionMixin:
    """``_new_conn`` of urllib3's connections, resolving once through the guard."""

    def _new_conn(self) -> socket.socket:
        watch = _current_watch()
        timeout = self.timeout
        if watch is not None:
            if watch.remaining() <= 0:
                raise OutboundRefused(f"{self.host} did not answer within {watch.seconds:g} s")
            timeout = watch.remaining() if timeout is None else min(timeout, watch.remaining())
        try:
            infos = host_resolve(self._dns_host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        error: OSError | None = None
        for family, kind, proto, _name, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                sock.settimeout(timeout)
                if watch is not None:
                    watch.watch(sock)
                sock.connect(address)  # the checked address, never a second lookup
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        if isinstance(error, TimeoutError):
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out.") from error
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class _WatchedPoolMixin:
    def _get_conn(self, timeout: float | None = None):
        connection = super()._get_conn(timeout)
        watch = _current_watch()
        if watch is not None:  # a kept-alive connection: its socket is watched too
            watch.watch(getattr(connection, "sock", None))
        return connection


class GuardedHTTPPool(_WatchedPoolMixin, HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSPool(_WatchedPoolMixin, HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": GuardedHTTPPool, "https": GuardedHTTPSPool}


class GuardedSession(HttpSession):
    """An ``HttpSession`` whose every connection goes through the guard (see the module docstring).

    The body is read within the request, up to ``max_bytes``: ``stream=True`` is not offered, since a
    streamed body would outlive the deadline."""

    def __init__(self, *, deadline: float, max_bytes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.deadline, self.max_bytes = deadline, max_bytes
        self.trust_env = False  # no proxy or .netrc from the environment
        self.max_redirects = 5
        retry = self.get_adapter("https://").max_retries
        adapter = GuardedAdapter(max_retries=retry)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, method: str, url: str, **kwargs) -> requests.Response:  # type: ignore[override]
        if kwargs.pop("stream", False):
            raise ValueError("a guarded session reads the body itself (no stream=True)")
        shown = url_shown(url)
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - a bad port raises here, not deep in urllib3
        except ValueError as exc:
            raise OutboundRefused(f"{shown} is not a URL the HQ fetches") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OutboundRefused(f"{shown} is not an http(s) URL with a host")
        watch, previous = _Watch(self.deadline), _current_watch()
        _local.watch = watch
        timer = threading.Timer(self.deadline, watch.expire)
        timer.daemon = True
        timer.start()
        late = f"{shown} did not answer within {self.deadline:g} s"
        try:
            response = super().request(method, url, stream=True, **kwargs)
            with response:
                response._content = self._body(response, shown)
                response._content_consumed = True
        except OutboundRefused:
            raise
        except Exception as exc:  # whatever the shut-down socket made urllib3 raise
            if watch.expired:
                raise OutboundRefused(late) from exc
            raise
        finally:
            timer.cancel()
            watch.close()
            _local.watch = previous
        if watch.expired:  # a body without a length ends cleanly when its socket is shut down
            raise OutboundRefused(late)
        return response

    def _body(self, response: requests.Response, shown: str) -> bytes:
        body = bytearray()
        for chunk in response.iter_content(65536):
            body += chunk
            if len(body) > self.max_bytes:
                raise OutboundRefused(f"the answer of {shown} is larger than {self.max_bytes:,} bytes")
        return bytes(body)

    def _pause(self, seconds: float) -> None:
        """A retry's pause never outlasts the deadline."""
        watch = _current_watch()
        self.sleep(min(seconds, max(0.0, watch.remaining())) if watch else seconds)


def guarded_session(
    *,
    timeout: float | None = None,
    max_retries: int | None = None,
    deadline: float | None = None,
    max_bytes: int = 10_000_000,
    **kwargs,
) -> GuardedSession:
    """The session for any URL a user or a repository supplies (see the module docstring)."""
    return GuardedSession(
        timeout=settings.HTTP_TIMEOUT_SECONDS if timeout is None else timeout,
        max_retries=settings.HTTP_MAX_RETRIES if max_retries is None else max_retries,
        deadline=settings.HQ_OUTBOUND_DEADLINE_SECONDS if deadline is None else deadline,
        max_bytes=max_bytes,
        **kwargs,
    )
