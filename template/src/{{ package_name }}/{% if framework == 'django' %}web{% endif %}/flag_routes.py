"""A route whose behaviour a feature flag decides: the example of evaluating a flag.

``GET /features/greeting`` answers with the greeting the ``greeting`` flag picks for the caller.
The logged-in user is the targeting key, so a rule can name users or roll a variant out to a
percentage of them (the same user gets the same answer from every replica). Without the flag,
or without a flag file, the code's default answers. Copy its shape for a real flag: take
``feature_flags(request)``, build the context with ``evaluation_context`` and always pass a
default that is safe to serve.
"""

from django.http import HttpRequest, HttpResponse
from pydantic import BaseModel

from ..flags import evaluation_context
from . import accounts, api_docs
from .dependencies import feature_flags
from .errors import json_response
from .routing import endpoint

GREETING_FLAG = "greeting"
DEFAULT_GREETING = "Hello"


class Greeting(BaseModel):
    greeting: str
    # Which variant of the flag answered (None: the code's default) and why (OpenFeature's
    # reason: STATIC, TARGETING_MATCH, DEFAULT, DISABLED or ERROR).
    variant: str | None
    reason: str | None


@api_docs.operation(response=Greeting)
async def greeting(request: HttpRequest) -> HttpResponse:
    # The logged-in user's name (accounts.py: Django's user, or the demo account in the session).
    context = evaluation_context(await accounts.current_username(request))
    details = feature_flags(request).client.get_string_details(
        GREETING_FLAG, DEFAULT_GREETING, context
    )
    return json_response(
        Greeting(
            greeting=details.value, variant=details.variant, reason=details.reason
        ).model_dump()
    )


urlpatterns = [endpoint("features/greeting", name="greeting", get=greeting)]
