"""A route whose behaviour a feature flag decides: the example of evaluating a flag.

``GET /features/greeting`` answers with the greeting the ``greeting`` flag picks for the caller.
The logged-in user is the targeting key, so a rule can name users or roll a variant out to a
percentage of them (the same user gets the same answer from every replica). Without the flag,
or without a flag file, the code's default answers. Copy its shape for a real flag: take
``feature_flags()``, build the context with ``evaluation_context`` and always pass a default
that is safe to serve.
"""

from typing import Any

from flask import Blueprint, Flask, session
from pydantic import BaseModel

from ..flags import FeatureFlags, evaluation_context
from . import api_docs
from .dependencies import feature_flags

GREETING_FLAG = "greeting"
DEFAULT_GREETING = "Hello"

blueprint = Blueprint("features", __name__, url_prefix="/features")


def install(app: Flask, flags: FeatureFlags) -> None:
    app.extensions["feature_flags"] = flags
    app.register_blueprint(blueprint)


class Greeting(BaseModel):
    greeting: str
    # Which variant of the flag answered (None: the code's default) and why (OpenFeature's
    # reason: STATIC, TARGETING_MATCH, DEFAULT, DISABLED or ERROR).
    variant: str | None
    reason: str | None


@blueprint.get("/greeting")
@api_docs.operation(response=Greeting)
def greeting() -> dict[str, Any]:
    user = session.get("user")
    context = evaluation_context(str(user) if user is not None else None)
    details = feature_flags().client.get_string_details(GREETING_FLAG, DEFAULT_GREETING, context)
    return Greeting(
        greeting=details.value, variant=details.variant, reason=details.reason
    ).model_dump()
