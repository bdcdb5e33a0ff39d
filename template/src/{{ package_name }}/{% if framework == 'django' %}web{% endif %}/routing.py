"""``endpoint``: one URL pattern whose views are chosen by HTTP method.

Django routes by path only; a route module lists its URLs as Django does (``urlpatterns``), each
built here with one async view per method::

    urlpatterns = [endpoint("cache/items/<str:key>", get=get_item, put=put_item)]

The pattern answers 405 (with ``Allow``) for another method, HEAD with the GET view's headers,
writes the matched route (``/cache/items/{key}``) into the ASGI scope for the metrics and tracing
labels, and turns exceptions into answers (``errors.py``): an ``HttpError`` or a registered
domain exception becomes its ``{"detail": ...}``; anything else is logged and answered 500.
"""

import re
from collections.abc import Awaitable, Callable
from typing import Any, cast

from asgiref.sync import markcoroutinefunction
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import URLPattern, path

from ..asgi import Scope
from . import errors

View = Callable[..., Awaitable[HttpResponseBase]]

# Where the matched route's template goes in the ASGI scope, for the metrics and tracing labels.
ROUTE_TEMPLATE_KEY = "route_template"
# ``<converter:name>`` or ``<name>`` in a Django route.
ROUTE_PARAMETER = re.compile(r"<(?:(\w+):)?(\w+)>")


def path_template(route: str) -> str:
    """A Django route as a path template: ``files/objects/<path:key>`` is
    ``/files/objects/{key}``."""
    return "/" + ROUTE_PARAMETER.sub(lambda match: "{" + match[2] + "}", route)


def asgi_scope(request: HttpRequest) -> Scope:
    """The ASGI scope of the request (Django's ASGI request keeps it)."""
    return cast(Scope, cast(ASGIRequest, request).scope)


def route_template(scope: Scope) -> str | None:
    """The matched route's path template, written into the scope by ``endpoint``; None when
    no route matched."""
    template = scope.get(ROUTE_TEMPLATE_KEY)
    return template if isinstance(template, str) else None


class Dispatch:
    """The view of one URL pattern: the method's view, run with the errors answered."""

    # A JSON API: Django's CSRF token is for form views (csrf.py); cookie-carrying writes here
    # are checked by the core's origin check before Django runs.
    csrf_exempt = True

    def __init__(self, views: dict[str, View]) -> None:
        self.views = views
        self.allow = ", ".join(sorted({*views, "HEAD"} if "GET" in views else views))
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest, **arguments: Any) -> HttpResponseBase:
        if request.resolver_match is not None:
            asgi_scope(request)[ROUTE_TEMPLATE_KEY] = path_template(request.resolver_match.route)
        method = request.method or "GET"
        view = self.views.get("GET" if method == "HEAD" else method)
        if view is None:
            return errors.json_error("Method Not Allowed", 405, {"Allow": self.allow})
        try:
            response = await view(request, **arguments)
        except Exception as exc:
            answer = errors.answer(exc)
            if answer is None:
                return errors.internal_error(request, exc)
            return answer
        if method == "HEAD" and not response.streaming:
            # The GET answer's headers, without its body (a view that answered HEAD itself
            # has set its length).
            content = cast(Any, response).content
            if "Content-Length" not in response:
                response["Content-Length"] = str(len(content))
            cast(Any, response).content = b""
        return response


def endpoint(route: str, *, name: str | None = None, **views: View) -> URLPattern:
    """The URL pattern of ``route`` (Django's syntax, no leading slash) answered by ``views``:
    one async view per method, by lower-case name (``get=``, ``post=``...)."""
    dispatch = Dispatch({method.upper(): view for method, view in views.items()})
    return path(route, dispatch, name=name)
