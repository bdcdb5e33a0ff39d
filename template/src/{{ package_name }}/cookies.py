"""Reading one cookie from a request's ``Cookie`` headers, the way browsers write them."""

from collections.abc import Iterable


def cookie_value(headers: Iterable[tuple[bytes, bytes]], name: str) -> str | None:
    """The value of the first cookie called ``name`` in the ``Cookie`` headers, or None.

    The header is read as browsers write it, ``name=value`` pairs joined by ``;``, the way
    Django, Starlette and Werkzeug read it. ``http.cookies.SimpleCookie`` is stricter: at the
    first pair it cannot parse it stops, silently, and drops every later pair. Another
    application on the same domain can set such a pair, for example JSON with a space or a
    value with a stray quote. With SimpleCookie, a browser that sends it before the session
    cookie logs its user out.
    """
    wanted = name.encode("latin-1")
    for header, raw in headers:
        if header != b"cookie":
            continue
        for pair in raw.split(b";"):
            key, separator, value = pair.partition(b"=")
            if separator and key.strip() == wanted:
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] == ord('"'):
                    value = value[1:-1]
                return value.decode("latin-1")
    return None
