"""The reader of an agent's streaming answer (multipart/x-mixed-replace), fed in pieces."""

from __future__ import annotations

import pytest

from connectors.mtconnect.multipart import MultipartError, MultipartReader, boundary_of


def _part(body: bytes, *, length: bool = True) -> bytes:
    head = b"--B1\r\nContent-type: text/xml\r\n"
    if length:
        head += b"Content-length: " + str(len(body)).encode() + b"\r\n"
    return head + b"\r\n" + body + b"\r\n"


def test_boundary_of_content_type() -> None:
    assert boundary_of("multipart/x-mixed-replace;boundary=a1b2") == "a1b2"
    assert boundary_of('multipart/x-mixed-replace; boundary="q q"') == "q q"
    assert boundary_of("text/xml; charset=utf-8") is None
    assert boundary_of("multipart/x-mixed-replace") is None


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "to-boundary"])
def test_parts_fed_one_byte_at_a_time(length: bool) -> None:
    bodies = [b"<a>1</a>", b"<b>--B</b>\r\n", b""]
    stream = b"".join(_part(b, length=length) for b in bodies) + b"--B1--\r\n"
    reader = MultipartReader("B1")
    got: list[bytes] = []
    for i in range(len(stream)):
        got += reader.feed(stream[i : i + 1])
    assert got == bodies
    assert reader.closed


def test_a_bad_length_is_one_clear_error() -> None:
    with pytest.raises(MultipartError, match="Content-length 'x'"):
        MultipartReader("B1").feed(b"--B1\r\nContent-length: x\r\n\r\n<a/>")
