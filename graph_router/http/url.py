"""Backend URLs, parsed and checked once at load time; the request line and Host are precomputed."""

from __future__ import annotations

from urllib.parse import quote, urljoin, urlsplit

_SAFE_PATH = "/%:@!$&'()*+,;=-._~"
_SAFE_QUERY = _SAFE_PATH + "?"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Url:
    """An ``http(s)://host[:port]/path?query`` URL. Build with :meth:`parse`."""

    __slots__ = ("_prefixes", "authority", "host", "key", "port", "raw", "scheme", "target")

    def __init__(self, raw: str, scheme: str, host: str, port: int, authority: str, target: str) -> None:
        self.raw = raw
        self.scheme = scheme
        self.host = host
        self.port = port
        #: ``host[:port]`` as written: the Host header (as Go sends it).
        self.authority = authority
        #: Path and query, percent-encoded: the request target.
        self.target = target
        #: Pool key: connections are shared by URLs with the same key.
        self.key = (scheme, host, port)
        self._prefixes: dict[str, str] = {}

    @classmethod
    def parse(cls, s: str) -> Url:
        """Parse ``s``; raises ValueError saying what is wrong."""
        if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in s):
            raise ValueError(f"invalid URL {s!r}: contains whitespace or a control character")
        try:
            parts = urlsplit(s)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"invalid URL {s!r}: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            got = parts.scheme or "none"
            raise ValueError(f"invalid URL {s!r}: scheme must be http or https, got {got!r}")
        host = parts.hostname
        if not host:
            raise ValueError(f"invalid URL {s!r}: missing host")
        if parts.username is not None or parts.password is not None:
            raise ValueError(f"invalid URL {s!r}: credentials in backend URLs are not supported")
        authority = parts.netloc
        target = quote(parts.path or "/", safe=_SAFE_PATH)
        if parts.query:
            target += "?" + quote(parts.query, safe=_SAFE_QUERY)
        return cls(s, scheme, host, port if port is not None else _DEFAULT_PORTS[scheme], authority, target)

    def head_prefix(self, method: str) -> str:
        """``METHOD target HTTP/1.1`` and the Host line, built once per method."""
        prefix = self._prefixes.get(method)
        if prefix is None:
            prefix = self._prefixes[method] = f"{method} {self.target} HTTP/1.1\r\nhost: {self.authority}\r\n"
        return prefix

    def join(self, location: str) -> Url:
        """Resolve a ``Location`` header against this URL."""
        return Url.parse(urljoin(self.raw, location))

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def dial_address(self) -> str:
        """``host:port`` as Go prints it in dial errors."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.raw

    def __repr__(self) -> str:
        return f"Url({self.raw!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Url) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)
