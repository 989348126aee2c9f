"""AWS Secrets Manager: `trading/exchanges/<account>` (JSON fields) and `trading/vhc/<name>`.

boto3 is an optional extra (`pip install 'ccxtkit[aws]'`), imported only when used. Credentials
and region come from boto3's usual chain (environment, profile, instance role); the config may
set `secrets.aws.region` and `secrets.aws.endpoint_url` (a VPC endpoint, or a test server).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NoReturn

from ccxtkit.config import AwsSettings
from ccxtkit.errors import ConfigError

from .common import (
    BackendUnavailableError,
    Fetched,
    MissingSecretError,
    SecretRef,
    parse_json_fields,
)

_ACCESS_CODES = {
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "InvalidClientTokenId",
}


def secret_id(settings: AwsSettings, ref: SecretRef) -> str:
    """The secret's name: `<prefix>/<account>`, or `<prefix's parent>/vhc/<name>`."""
    if ref.is_exchange:
        return f"{settings.prefix.rstrip('/')}/{ref.name}"
    parent = settings.prefix.rstrip("/").rpartition("/")[0] or settings.prefix.rstrip("/")
    return f"{parent}/vhc/{ref.name}"


def where(settings: AwsSettings, ref: SecretRef) -> str:
    """A human-readable location (never the value)."""
    return f"AWS Secrets Manager secret {secret_id(settings, ref)}"


def _client(settings: AwsSettings) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ConfigError("secrets: aws needs boto3: pip install 'ccxtkit[aws]'") from None
    from botocore.exceptions import NoRegionError

    try:
        return boto3.client(
            "secretsmanager",
            region_name=settings.region,
            endpoint_url=settings.endpoint_url,
            config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2}),
        )
    except NoRegionError:
        raise ConfigError(
            "no AWS region for Secrets Manager: set secrets.aws.region or AWS_DEFAULT_REGION"
        ) from None


def _fail(exc: Exception, settings: AwsSettings, ref: SecretRef) -> NoReturn:
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
    )

    name = secret_id(settings, ref)
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "ResourceNotFoundException":
            raise MissingSecretError(
                f"no AWS Secrets Manager secret {name}: run `vhc secrets set {ref.name}`"
            ) from None
        if code in _ACCESS_CODES:
            raise BackendUnavailableError(
                f"AWS refused access to secret {name} ({code}): check the AWS credentials "
                "and that their policy allows secretsmanager on this secret"
            ) from None
        raise BackendUnavailableError(f"AWS Secrets Manager failed on {name}: {code}") from None
    if isinstance(exc, NoCredentialsError):
        raise ConfigError(
            f"no AWS credentials to read secret {name}: configure a profile, role or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        ) from None
    if isinstance(exc, EndpointConnectionError):
        raise BackendUnavailableError(
            f"AWS Secrets Manager is unreachable ({exc.kwargs.get('endpoint_url', '?')}) "
            f"while accessing {name}: check the network or secrets.aws.endpoint_url"
        ) from None
    if isinstance(exc, BotoCoreError):
        raise BackendUnavailableError(
            f"AWS Secrets Manager failed on {name}: {type(exc).__name__}"
        ) from None
    raise exc


def read(settings: AwsSettings, ref: SecretRef) -> Fetched:
    """Read the current version of a secret."""
    sm = _client(settings)
    name = secret_id(settings, ref)
    try:
        response = sm.get_secret_value(SecretId=name)
    except Exception as exc:  # noqa: BLE001 - mapped to one line
        _fail(exc, settings, ref)
    text = response.get("SecretString")
    if text is None:
        raise ConfigError(f"AWS secret {name} holds binary data, not text; store it again")
    created = response.get("CreatedDate")
    updated_at = created if isinstance(created, datetime) else None
    if ref.is_exchange:
        return Fetched(parse_json_fields(str(text), where(settings, ref)), updated_at)
    return Fetched({"value": str(text)}, updated_at)


def write(settings: AwsSettings, ref: SecretRef, fields: dict[str, str]) -> str:
    """Create the secret, or put a new version of it; returns where it went."""
    from botocore.exceptions import ClientError

    sm = _client(settings)
    name = secret_id(settings, ref)
    text = json.dumps(fields, sort_keys=True) if ref.is_exchange else fields["value"]
    try:
        try:
            sm.put_secret_value(SecretId=name, SecretString=text)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            sm.create_secret(Name=name, SecretString=text)
    except Exception as exc:  # noqa: BLE001 - mapped to one line
        _fail(exc, settings, ref)
    return where(settings, ref)
