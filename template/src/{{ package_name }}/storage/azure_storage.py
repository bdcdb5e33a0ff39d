"""Azure Blob Storage through obstore.

Credentials are the storage account's name and key (environment or secret files); the key also
signs the SAS URLs. Without a key, obstore uses the platform's identity instead (AKS workload
identity through AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE, or a managed
identity) and signs URLs with a user delegation key. STORAGE_ENDPOINT_URL points at Azurite or a
private endpoint: ``http://127.0.0.1:10000/devstoreaccount1`` (the account is part of the path).
"""

from typing import Any

from obstore.store import AzureStore

from ..config import ConfigError, Credential, EnvironmentSettings
from ..security.keys import SigningKeys
from .obstore_common import ObstoreStorage, client_options, retry_config
from .settings import StorageSettings


class AzureCredentials(EnvironmentSettings):
    azure_storage_account_name: str | None = None
    azure_storage_account_key: Credential = None


def credential_problems(settings: StorageSettings) -> list[str]:
    """Checked with every other setting at start (``StorageSettings.load``)."""
    if AzureCredentials.from_environment().azure_storage_account_name is None:
        return [
            "AZURE_STORAGE_ACCOUNT_NAME is required when STORAGE_BUCKET (the container) is set "
            "or APP_ENV=production"
        ]
    return []


def build_store(settings: StorageSettings, endpoint: str | None) -> AzureStore:
    credentials = AzureCredentials.from_environment()
    if credentials.azure_storage_account_name is None:
        raise ConfigError(credential_problems(settings))
    config: dict[str, Any] = {"account_name": credentials.azure_storage_account_name}
    if credentials.azure_storage_account_key is not None:
        config["account_key"] = credentials.azure_storage_account_key.get_secret_value()
    if endpoint is not None:
        config["endpoint"] = endpoint
    return AzureStore(
        settings.bucket(),
        config=config,  # type: ignore[arg-type]
        client_options=client_options(settings, endpoint),  # type: ignore[arg-type]
        retry_config=retry_config(settings),  # type: ignore[arg-type]
    )


def open_storage(settings: StorageSettings, signing_keys: SigningKeys) -> ObstoreStorage:
    store = build_store(settings, settings.storage_endpoint_url)
    public = settings.storage_public_endpoint_url
    signer = store if public is None else build_store(settings, public)
    where = settings.storage_endpoint_url or "Azure"
    return ObstoreStorage(store, signer, settings, f"azure://{settings.bucket()} at {where}")
