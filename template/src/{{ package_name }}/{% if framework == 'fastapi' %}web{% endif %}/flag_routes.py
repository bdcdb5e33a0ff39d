"""A route whose behaviour a feature flag decides: the example of evaluating a flag.

``GET /features/greeting`` answers with the greeting the ``greeting`` flag picks for the caller.
The logged-in user is the targeting key, so a rule can name users or roll a variant out to a
percentage of them (the same user gets the same answer from every replica). Without the flag,
or without a flag file, the code's default answers. Copy its shape for a real flag: take
``FeatureFlagsDep``, build the context with ``evaluation_context`` and always pass a default that
is safe to serve.
"""

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from ..flags import FeatureFlags, evaluation_context
from .dependencies import FeatureFlagsDep, SessionDep
from .routers import add_router

GREETING_FLAG = "greeting"
DEFAULT_GREETING = "Hello"

router = APIRouter(prefix="/features", tags=["features"])


def install(app: FastAPI, flags: FeatureFlags) -> None:
    app.state.feature_flags = flags
    add_router(app, router)


class Greeting(BaseModel):
    greeting: str
    # Which variant of the flag answered (None: the code's default) and why (OpenFeature's
    # reason: STATIC, TARGETING_MATCH, DEFAULT, DISABLED or ERROR).
    variant: str | None
    reason: str | None


@router.get("/greeting")
async def greeting(flags: FeatureFlagsDep, session: SessionDep) -> Greeting:
    user = session.get("user")
    context = evaluation_context(str(user) if user is not None else None)
    details = flags.client.get_string_details(GREETING_FLAG, DEFAULT_GREETING, context)
    return Greeting(greeting=details.value, variant=details.variant, reason=details.reason)
