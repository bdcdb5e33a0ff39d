"""S3 and S3-compatible services (AWS, MinIO, Cloudflare R2, Ceph...) through obstore.

Credentials are the AWS variables (environment or secret files). Without an access key, obstore
uses the platform's identity instead (EKS IRSA web identity token, ECS task role, EC2 instance
profile). STORAGE_ENDPOINT_URL points at MinIO, R2 or an emulator; requests then use path-style
addressing (``<endpoint>/<bucket>/<key>``), which every S3-compatible server understands.
"""

from typing import Any

from obstore.store import S3Store

from ..config import Credential, EnvironmentSettings
from .obstore_common import ObstoreStorage, client_options, retry_config
from .settings import StorageSettings


class S3Credentials(EnvironmentSettings):
    aws_access_key_id: Credential = None
    aws_secret_access_key: Credential = None
    aws_session_token: Credential = None
    # The bucket's region; MinIO and most S3-compatible servers accept us-east-1.
    aws_region: str = "us-east-1"


def build_store(settings: StorageSettings, endpoint: str | None) -> S3Store:
    credentials = S3Credentials.from_environment()
    config: dict[str, Any] = {"region": credentials.aws_region}
    if endpoint is not None:
        config["endpoint"] = endpoint
        config["virtual_hosted_style_request"] = False
    for name, secret in (
        ("access_key_id", credentials.aws_access_key_id),
        ("secret_access_key", credentials.aws_secret_access_key),
        ("session_token", credentials.aws_session_token),
    ):
        if secret is not None:
            config[name] = secret.get_secret_value()
    return S3Store(
        settings.bucket(),
        config=config,  # type: ignore[arg-type]
        client_options=client_options(settings, endpoint),  # type: ignore[arg-type]
        retry_config=retry_config(settings),  # type: ignore[arg-type]
    )


def open_storage(settings: StorageSettings, signing_secret: str) -> ObstoreStorage:
    store = build_store(settings, settings.storage_endpoint_url)
    public = settings.storage_public_endpoint_url
    signer = store if public is None else build_store(settings, public)
    where = settings.storage_endpoint_url or "AWS"
    return ObstoreStorage(store, signer, settings, f"s3://{settings.bucket()} at {where}")
