"""The AWS Secrets Manager backend against moto's standalone server."""

from __future__ import annotations

import json

import boto3
import pytest

from ccxtkit.secrets import (
    BackendUnavailableError,
    Credentials,
    MissingSecretError,
    get_secret,
    resolve_credentials,
    set_credentials,
    set_secret,
)
from ccxtkit.workspace import Workspace
from tests.servers import MotoServer, closed_port, write_workspace


def aws_ws(tmp_path, endpoint: str) -> Workspace:
    home = write_workspace(
        tmp_path / "ws",
        f"""
exchanges:
  coinbase: {{secrets: aws}}
  kraken: {{secrets: aws}}
secrets:
  aws: {{region: us-east-1, endpoint_url: "{endpoint}"}}
""",
    )
    return Workspace.locate(str(home))


def sm(server: MotoServer):
    return boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=server.endpoint)


def test_set_then_resolve_at_the_seed_name(tmp_path, aws_env):
    ws = aws_ws(tmp_path, aws_env.endpoint)
    creds = Credentials("aws-key-555555", "aws-secret-666666", "aws-pass-777777")
    set_credentials(ws, "coinbase", creds)
    stored = json.loads(
        sm(aws_env).get_secret_value(SecretId="trading/exchanges/coinbase")["SecretString"]
    )
    assert stored == {
        "api_key": "aws-key-555555",
        "api_secret": "aws-secret-666666",
        "passphrase": "aws-pass-777777",
    }
    assert resolve_credentials(ws, "coinbase") == creds
    # Setting again puts a new version rather than failing on the existing name.
    set_credentials(ws, "coinbase", Credentials("aws-key-2", "aws-secret-2"))
    assert resolve_credentials(ws, "coinbase") == Credentials("aws-key-2", "aws-secret-2")


def test_resolves_a_secret_created_with_the_aws_cli(tmp_path, aws_env):
    sm(aws_env).create_secret(
        Name="trading/exchanges/kraken",
        SecretString='{"api_key":"YOUR_KEY","api_secret":"YOUR_SECRET"}',
    )
    ws = aws_ws(tmp_path, aws_env.endpoint)
    assert resolve_credentials(ws, "kraken") == Credentials("YOUR_KEY", "YOUR_SECRET")


def test_missing_secret_is_exit_2_naming_it(tmp_path, aws_env):
    ws = aws_ws(tmp_path, aws_env.endpoint)
    with pytest.raises(MissingSecretError) as info:
        resolve_credentials(ws, "kraken")
    assert info.value.exit_code == 2
    assert "trading/exchanges/kraken" in info.value.message
    assert "vhc secrets set kraken" in info.value.message


def test_unreachable_endpoint_is_exit_5(tmp_path, aws_env):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    ws = aws_ws(tmp_path, endpoint)
    with pytest.raises(BackendUnavailableError) as info:
        resolve_credentials(ws, "kraken")
    assert info.value.exit_code == 5
    assert endpoint in info.value.message and "trading/exchanges/kraken" in info.value.message


def test_named_secret(tmp_path, aws_env):
    ws = aws_ws(tmp_path, aws_env.endpoint)
    set_secret(ws, "telegram_bot_token", "tg-token-888888", backend="aws")
    raw = sm(aws_env).get_secret_value(SecretId="trading/vhc/telegram_bot_token")["SecretString"]
    assert raw == "tg-token-888888"
    assert get_secret(ws, "telegram_bot_token", backend="aws") == "tg-token-888888"
