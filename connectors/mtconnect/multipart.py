"""Pure reader of an MTConnect agent's streaming answer (``sample?interval=``):
``multipart/x-mixed-replace`` parts, each one MTConnectStreams document (MTConnect Part 1,
"Streaming"). A part is ``--BOUNDARY``, its headers (``Content-length`` when the agent gives it),
an empty line, the body; without a length the body ends at the next boundary line.
"""

from __future__ import annotations

MAX_BUFFER = 64 * 1024 * 1024  # a part this large is not an MTConnect document


class MultipartError(ValueError):
    """The stream is not a multipart stream this reader understands."""


def boundary_of(content_type: str) -> str | None:
    """The ``boundary`` parameter of a multipart Content-Type, or None."""
    kind, _, params = content_type.partition(";")
    if not kind.strip().lower().startswith("multipart/"):
        return None
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "boundary" and value.strip():
            return value.strip().strip('"')
    return None


class MultipartReader:
    """Feed bytes as they arrive; get the complete parts' bodies."""

    def __init__(self, boundary: str) -> None:
        self._delim = b"--" + boundary.encode("latin-1")
        self._buf = bytearray()
        self.closed = False

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        if len(buf) > MAX_BUFFER:
            raise MultipartError(f"a part of more than {MAX_BUFFER} bytes")
        out: list[bytes] = []
        while not self.closed:
            start = buf.find(self._delim)
            if start < 0:
                break
            head = start + len(self._delim)
            if buf[head : head + 2] == b"--":
                self.closed = True  # the closing boundary
                buf.clear()
                break
            end = buf.find(b"\r\n\r\n", head)
            if end < 0:
                break
            length = _content_length(bytes(buf[head:end]))
            body = end + 4
            if length is not None:
                if len(buf) < body + length:
                    break
                out.append(bytes(buf[body : body + length]))
                del buf[: body + length]
            else:
                nxt = buf.find(b"\r\n" + self._delim, body)
                if nxt < 0:
                    break
                out.append(bytes(buf[body:nxt]))
                del buf[:nxt]
        return out


def _content_length(headers: bytes) -> int | None:
    for line in headers.decode("latin-1").split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == "content-length":
            try:
                n = int(value.strip())
            except ValueError:
                raise MultipartError(f"Content-length {value.strip()!r}") from None
            if n < 0:
                raise MultipartError(f"Content-length {n}")
            return n
    return None
