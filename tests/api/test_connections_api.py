"""Workspace connections: created from the SDK and from the azureml-examples YAML shapes,
shown without secrets, secrets encrypted at rest (the stored row holds no clear text)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from shoal import (
    AccessKeyConfiguration,
    PatTokenConfiguration,
    UsernamePasswordConfiguration,
    WorkspaceConnection,
)
from shoal.entities.kinds import parse_entity
from shoal.errors import NotFoundError
from shoal.store.tables import ResourceRow
from tests.api.conftest import Api, error_of

SECRET = "ghp_s3cr3t-token-never-shown"


def test_connections_keep_their_secrets_encrypted_and_hidden(api: Api):
    ml = api.ml
    created = ml.connections.create_or_update(
        WorkspaceConnection(
            name="my_git",
            type="git",
            target="https://github.com/org/repo",
            credentials=PatTokenConfiguration(pat=SECRET),
        )
    )
    assert created.credentials.pat is None and created.target == "https://github.com/org/repo"
    assert SECRET not in str(created) and SECRET not in api.http.get(api.url("/connections/my_git")).text
    revealed = ml.connections.get("my_git", populate_secrets=True)
    assert revealed.credentials.pat == SECRET
    assert SECRET not in repr(revealed.credentials) and SECRET not in str(revealed)  # print() hides it too
    with api.app.state.ctx.db.read() as session:
        row = session.scalar(select(ResourceRow).where(ResourceRow.kind == "connection"))
        assert SECRET not in str(row.spec) and row.secrets and SECRET not in row.secrets
    # sent back as shown (no secret): the stored secret stays
    ml.connections.create_or_update(ml.connections.get("my_git"))
    assert ml.connections.get("my_git", populate_secrets=True).credentials.pat == SECRET
    ml.connections.create_or_update(
        WorkspaceConnection(
            name="my_s3",
            type="s3",
            target="my-bucket",
            credentials=AccessKeyConfiguration(access_key_id="AKIA", secret_access_key=SECRET),
        )
    )
    ml.connections.create_or_update(
        {
            "name": "acr",
            "type": "container_registry",
            "target": "testacr.azurecr.io",
            "credentials": {"type": "username_password", "username": "u", "password": SECRET},
        }
    )
    listed = list(ml.connections.list())
    assert [c.name for c in listed] == ["acr", "my_git", "my_s3"]
    assert SECRET not in api.http.get(api.url("/connections")).text
    assert isinstance(listed[0].credentials, UsernamePasswordConfiguration) and listed[0].credentials.username == "u"
    assert [c.name for c in ml.connections.list(connection_type="s3")] == ["my_s3"]
    ml.connections.delete("my_s3")
    with pytest.raises(NotFoundError, match="my_s3"):
        ml.connections.get("my_s3")


def test_the_kind_table_splits_off_every_connection_secret():
    from shoal.entities.connection import CONNECTION_SECRET_FIELDS
    from shoal.entities.kinds import KINDS

    assert KINDS["connection"].secret_paths == tuple(f"credentials.{key}" for key in CONNECTION_SECRET_FIELDS)


def test_bad_connections_are_refused_naming_the_field(sqlite_api: Api):
    api = sqlite_api
    base = {"name": "c", "type": "git", "target": "https://x", "credentials": {"type": "pat", "pat": "p"}}
    for change, word in (
        ({"type": "carrier_pigeon"}, "carrier_pigeon"),
        ({"credentials": {"type": "telepathy"}}, "telepathy"),
        ({"credentials": {"type": "username_password", "password": "p"}}, "username"),
        ({"name": "bad.name"}, "connection name"),
    ):
        name = change.get("name", "c")
        response = api.http.put(api.url(f"/connections/{name}"), json={**base, **change, "name": name})
        assert response.status_code in (400, 422), response.text
        assert word in error_of(response)["message"], response.text
    assert api.http.get(api.url("/connections")).json()["value"] == []


def test_secrets_need_the_secrets_permission(sqlite_api: Api):
    api = sqlite_api
    from shoal.server.auth import Permission, Principal

    api.ml.connections.create_or_update(
        {"name": "k", "type": "custom", "credentials": {"type": "api_key", "key": SECRET}}
    )
    api.app.state.tokens.add("reader-token", Principal("reader", frozenset({Permission.READ})))
    response = api.anon.get(
        api.url("/connections/k?include_secrets=true"), headers={"Authorization": "Bearer reader-token"}
    )
    assert response.status_code == 403 and "secrets" in error_of(response)["message"]
    shown = parse_entity("connection", api.http.get(api.url("/connections/k")).json())
    assert shown.credentials.key is None
