"""``python -m juggernaut.serve [daphne options] juggernaut.asgi:application``: daphne, with an access
log that records no token and a body limit applied while the body arrives.

daphne's command line has no option for either, so this entry point swaps them in before handing over
to daphne's own. The body limit has to live here: daphne (through Twisted) receives the whole body
before the application runs, then hands all of it over at once, so a limit applied only by the
application still costs the process the body's size in memory.
"""

from urllib.parse import unquote, urlsplit

from daphne import cli, http_protocol

from juggernaut.redaction import RedactingAccessLog


class BoundedWebRequest(http_protocol.WebRequest):
    """daphne's request, keeping no byte past its path's body limit: an announced ``Content-Length``
    over the limit, or a chunked body that grows past it, is drained without being stored and
    answered with 413 (the API's error shape) once the client has finished sending."""

    _limit = 0
    _received = 0
    _over = False

    def gotLength(self, length: int | None) -> None:
        from juggernaut.middleware import body_limit

        uri = getattr(self.channel, "_path", b"/") or b"/"
        self._path_text = unquote(urlsplit(uri).path.decode("latin-1")) or "/"
        self._limit = body_limit(self._path_text)
        self._over = length is not None and length > self._limit
        super().gotLength(0 if self._over else length)

    def handleContentChunk(self, data: bytes) -> None:
        self._received += len(data)
        if self._received > self._limit:
            if not self._over:
                self._over = True
                self.content.seek(0)
                self.content.truncate()
            return
        super().handleContentChunk(data)

    def process(self):
        if not self._over:
            return super().process()
        from juggernaut.middleware import body_refusal

        content_type, body = body_refusal(self._path_text, self._limit)
        self.setResponseCode(413)
        self.setHeader(b"Content-Type", content_type)
        self.setHeader(b"Content-Length", str(len(body)).encode())
        self.setHeader(b"Connection", b"close")
        self.write(body)
        self.finish()
        return None


def main() -> None:
    cli.AccessLogGenerator = RedactingAccessLog
    http_protocol.WebRequest = BoundedWebRequest  # HTTPFactory builds requests from this name
    cli.CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
