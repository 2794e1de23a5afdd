"""Online endpoints on one real server: ``auth_mode: aml_token`` (get-credentials' access token,
a user's own token by role), the endpoint's ``openapi_uri`` and ``scale_settings``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Cli

SCORE = """\
def init():
    pass

def run(raw_data):
    import json
    return [x * 2 for x in json.loads(raw_data)["data"]]
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("endpoint-auth")
    (root / "code").mkdir()
    (root / "code" / "score.py").write_text(SCORE)
    (root / "model").mkdir()
    (root / "model" / "weights.txt").write_text("2")
    (root / "endpoint.yml").write_text("name: tok-ep\nauth_mode: aml_token\n")
    (root / "blue.yml").write_text(
        "name: blue\nendpoint_name: tok-ep\nmodel:\n  path: model\n"
        "code_configuration:\n  code: code\n  scoring_script: score.py\n"
        "environment:\n  image: python:3.11\ninstance_type: Standard_DS3_v2\ninstance_count: 1\n"
        "scale_settings:\n  type: default\n"
    )
    (root / "request.json").write_text(json.dumps({"data": [1, 2]}))
    return root


def _post(uri: str, bearer: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return httpx.post(uri, json={"data": [3]}, headers=headers, timeout=30)


def _user_token(cli: Cli, user: str, role: str) -> str:
    cli("user", "create", "-n", user)
    cli("role", "assignment", "create", "--assignee", user, "--role", role)
    return cli("user", "token", "create", "-u", user, "--name", "t", "--query", "token", "-o", "tsv").out.strip()


def test_aml_token_endpoint(cli: Cli, files: Path) -> None:
    cli("online-endpoint", "create", "-f", str(files / "endpoint.yml"))
    cli("online-deployment", "create", "-e", "tok-ep", "-f", str(files / "blue.yml"), "--all-traffic", cwd=files)
    assert json.loads(
        cli("online-endpoint", "invoke", "-n", "tok-ep", "--request-file", str(files / "request.json")).out
    ) == [2, 4]

    # get-credentials answers an access token, as Azure's does for aml_token.
    creds = json.loads(cli("online-endpoint", "get-credentials", "-n", "tok-ep").out)
    assert set(creds) == {"accessToken", "expiryTimeUtc", "refreshAfterTimeUtc", "tokenType"}
    assert creds["tokenType"] == "Bearer" and creds["expiryTimeUtc"] > creds["refreshAfterTimeUtc"]
    uri = cli("online-endpoint", "show", "-n", "tok-ep", "--query", "scoring_uri", "-o", "tsv").out.strip()
    assert _post(uri, creds["accessToken"]).json() == [6]
    tampered = creds["accessToken"][:-2] + ("AA" if not creds["accessToken"].endswith("AA") else "BB")
    assert _post(uri, tampered).status_code == 401
    assert _post(uri, None).status_code == 401
    refused = cli("online-endpoint", "regenerate-keys", "-n", "tok-ep", check=False)
    assert refused.code != 0 and "aml_token" in refused.err

    # A user's own token scores by role: Data Scientist yes, Reader no (403, naming the right).
    scientist = _user_token(cli, "sci", "AzureML Data Scientist")
    reader = _user_token(cli, "rea", "Reader")
    assert _post(uri, scientist).json() == [6]
    denied = _post(uri, reader)
    assert denied.status_code == 403 and "score" in denied.json()["error"]["message"]
    assert _post(uri, "shoalu_not-a-token").status_code == 401

    # A token minted for this endpoint is good for it alone: another aml_token endpoint refuses it.
    (files / "other.yml").write_text("name: other-ep\nauth_mode: aml_token\n")
    cli("online-endpoint", "create", "-f", str(files / "other.yml"))
    other_uri = uri.replace("/tok-ep/", "/other-ep/")
    assert _post(other_uri, creds["accessToken"]).status_code == 401

    # A token survives a server restart (the endpoint's secret is stored, not the token).
    cli("server", "stop")
    cli("server", "start", "--detach")
    uri = cli("online-endpoint", "show", "-n", "tok-ep", "--query", "scoring_uri", "-o", "tsv").out.strip()
    for _ in range(100):
        answer = _post(uri, creds["accessToken"])
        if answer.status_code != 503:
            break
        time.sleep(0.2)
    assert answer.json() == [6]


def test_openapi_uri_and_scale_settings(cli: Cli, files: Path) -> None:
    shown = json.loads(cli("online-endpoint", "show", "-n", "tok-ep").out)
    assert shown["openapi_uri"].endswith("/onlineEndpoints/tok-ep/swagger.json")
    token = json.loads(cli("online-endpoint", "get-credentials", "-n", "tok-ep").out)["accessToken"]
    assert httpx.get(shown["openapi_uri"], timeout=30).status_code == 401
    doc = httpx.get(shown["openapi_uri"], headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    assert doc["openapi"].startswith("3.") and "post" in doc["paths"]["/score"]
    assert doc["servers"][0]["url"] + "/score" == shown["scoring_uri"]
    assert doc["x-traffic"] == {"blue": 100}

    dep = json.loads(cli("online-deployment", "show", "-n", "blue", "-e", "tok-ep").out)
    assert dep["scale_settings"] == {"type": "default"}
    cli(
        "online-deployment", "update", "-n", "blue", "-e", "tok-ep", "--set", "scale_settings.type=target_utilization",
        "--set", "scale_settings.min_instances=1", "--set", "scale_settings.max_instances=3",
        "--set", "scale_settings.target_utilization_percentage=70",
    )  # fmt: skip
    dep = json.loads(cli("online-deployment", "show", "-n", "blue", "-e", "tok-ep").out)
    assert dep["scale_settings"] == {
        "type": "target_utilization",
        "min_instances": 1,
        "max_instances": 3,
        "target_utilization_percentage": 70,
    }
    bad = cli("online-deployment", "update", "-n", "blue", "-e", "tok-ep", "--set", "scale_settings.type=autoscale",
              check=False)  # fmt: skip
    assert bad.code != 0 and "scale_settings" in bad.err
