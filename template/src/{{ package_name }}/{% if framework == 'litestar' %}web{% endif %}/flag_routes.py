"""A route whose behaviour a feature flag decides: the example of evaluating a flag.

``GET /features/greeting`` answers with the greeting the ``greeting`` flag picks for the caller.
The logged-in user is the targeting key, so a rule can name users or roll a variant out to a
percentage of them (the same user gets the same answer from every replica). Without the flag,
or without a flag file, the code's default answers. Copy its shape for a real flag: take
``feature_flags: FeatureFlagsDep``, build the context with ``evaluation_context`` and always pass a
default that is safe to serve.
"""

from litestar import Controller, get
from litestar.config.app import AppConfig
from litestar.plugins import InitPlugin
from pydantic import BaseModel

from ..flags import FeatureFlags, evaluation_context
from .dependencies import FeatureFlagsDep, SessionDep

GREETING_FLAG = "greeting"
DEFAULT_GREETING = "Hello"


class FeatureFlagsPlugin(InitPlugin):
    """The flags in ``app.state`` and the example route."""

    def __init__(self, flags: FeatureFlags) -> None:
        self.flags = flags

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.state["feature_flags"] = self.flags
        app_config.route_handlers.append(FeaturesController)
        return app_config


class Greeting(BaseModel):
    greeting: str
    # Which variant of the flag answered (None: the code's default) and why (OpenFeature's
    # reason: STATIC, TARGETING_MATCH, DEFAULT, DISABLED or ERROR).
    variant: str | None
    reason: str | None


class FeaturesController(Controller):
    path = "/features"
    tags = ("features",)

    @get("/greeting")
    async def greeting(self, feature_flags: FeatureFlagsDep, session: SessionDep) -> Greeting:
        user = session.get("user")
        context = evaluation_context(str(user) if user is not None else None)
        details = feature_flags.client.get_string_details(GREETING_FLAG, DEFAULT_GREETING, context)
        return Greeting(greeting=details.value, variant=details.variant, reason=details.reason)
