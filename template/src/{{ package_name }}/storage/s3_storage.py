"""S3 and S3-compatible services (AWS, MinIO, Cloudflare R2, Ceph...) through obstore.

Credentials are the AWS variables (environment or secret files). Without an access key, obstore
uses the platform's identity instead (EKS IRSA web identity token, ECS task role, EC2 instance
profile). STORAGE_ENDPOINT_URL points at MinIO, R2 or an emulator; requests then use path-style
addressing (``<endpoint>/<bucket>/<key>``), which every S3-compatible server understands.

Signed upload URLs come from botocore, AWS's own signer: obstore signs only the method and the
path, while a presigned PUT must also sign ``Content-Type`` and ``Content-Length`` so S3 refuses
an upload of another type or size (SignatureDoesNotMatch). botocore finds the same credentials
(variables, web identity token, task role, instance profile). It is imported on the first
signed upload, not at start: it takes longer to import than the rest of the service.
"""

import importlib
import threading
from typing import Any

from anyio import to_thread
from obstore.store import S3Store

from ..config import Credential, EnvironmentSettings
from ..security.keys import SigningKeys
from . import CONTENT_LENGTH, CONTENT_TYPE, SignedUpload, StorageForbidden, validate_key
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


def build_presigner(settings: StorageSettings) -> Any:
    """A botocore S3 client used only to sign (it sends nothing), for the public endpoint."""
    credentials = S3Credentials.from_environment()
    endpoint = settings.storage_public_endpoint_url or settings.storage_endpoint_url
    secrets = {
        name: None if secret is None else secret.get_secret_value()
        for name, secret in (
            ("aws_access_key_id", credentials.aws_access_key_id),
            ("aws_secret_access_key", credentials.aws_secret_access_key),
            ("aws_session_token", credentials.aws_session_token),
        )
    }
    addressing = "path" if endpoint is not None else "virtual"
    session = importlib.import_module("botocore.session")
    config = importlib.import_module("botocore.config").Config
    return session.get_session().create_client(
        "s3",
        region_name=credentials.aws_region,
        endpoint_url=endpoint,
        config=config(signature_version="s3v4", s3={"addressing_style": addressing}),
        **secrets,
    )


class S3Storage(ObstoreStorage):
    def __init__(self, store: S3Store, signer: S3Store, settings: StorageSettings) -> None:
        where = settings.storage_endpoint_url or "AWS"
        super().__init__(store, signer, settings, f"s3://{settings.bucket()} at {where}")
        self._settings = settings
        self._bucket = settings.bucket()
        self._presigner: Any = None
        self._presigner_lock = threading.Lock()

    def _presign_put(self, key: str, seconds: int, content_type: str, length: int) -> str:
        """Runs in a worker thread: the first call imports botocore and builds the client."""
        botocore_error = importlib.import_module("botocore.exceptions").BotoCoreError
        params = {
            "Bucket": self._bucket,
            "Key": key,
            "ContentType": content_type,
            "ContentLength": length,
        }
        try:
            with self._presigner_lock:
                if self._presigner is None:
                    self._presigner = build_presigner(self._settings)
            url: str = self._presigner.generate_presigned_url(
                "put_object", Params=params, ExpiresIn=seconds
            )
        except botocore_error as exc:  # no credentials found, or none usable
            raise StorageForbidden(f"sign {key}: {exc}"[:300]) from exc
        return url

    async def signed_upload(
        self, key: str, expires_in_seconds: int, *, content_type: str, content_length: int
    ) -> SignedUpload:
        """A presigned PUT whose signature covers Content-Type and Content-Length."""
        validate_key(key)
        url = await to_thread.run_sync(
            self._presign_put, key, expires_in_seconds, content_type, content_length
        )
        headers = {"Content-Type": content_type, "Content-Length": str(content_length)}
        return SignedUpload(url, headers, frozenset({CONTENT_TYPE, CONTENT_LENGTH}))


def open_storage(settings: StorageSettings, signing_keys: SigningKeys) -> S3Storage:
    store = build_store(settings, settings.storage_endpoint_url)
    public = settings.storage_public_endpoint_url
    signer = store if public is None else build_store(settings, public)
    return S3Storage(store, signer, settings)
