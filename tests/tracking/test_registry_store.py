"""The model registry service on SQLite and PostgreSQL: names, versions, aliases, stages, search
and deletes, with MLflow's error classes; versions stay model assets throughout."""

from __future__ import annotations

import pytest

from shoal.config import ShoalSettings
from shoal.errors import ConflictError, NotFoundError, UserError
from shoal.services.context import ServiceContext
from shoal.services.references import assets as asset_lookup
from shoal.services.registry import model_versions, registered_models
from shoal.services.workspaces import ensure_default

WS = "default"
URL = "https://example.com/models/m.tar.gz"


@pytest.fixture
def ctx(database_url, shoal_home, monkeypatch):
    monkeypatch.setenv("SHOAL_DATABASE_URL", database_url)
    context = ServiceContext.from_settings(ShoalSettings())
    context.db.migrate()
    ensure_default(context)
    yield context
    context.close()


def _version(ctx, name: str, **extra) -> dict:
    return model_versions.create_model_version(ctx, WS, {"name": name, "source": URL, **extra})["model_version"]


def test_registry_lifecycle(ctx):
    body = registered_models.create_registered_model(ctx, WS, {"name": "m", "tags": [{"key": "a", "value": "1"}]})
    assert body["registered_model"]["name"] == "m" and body["registered_model"]["tags"] == [{"key": "a", "value": "1"}]
    with pytest.raises(ConflictError):
        registered_models.create_registered_model(ctx, WS, {"name": "m"})
    with pytest.raises(NotFoundError):
        _version(ctx, "absent")
    v1 = _version(ctx, "m", tags=[{"key": "t", "value": "x"}], description="first")
    v2 = _version(ctx, "m")
    assert (v1["version"], v2["version"]) == ("1", "2") and v1["source"] == URL and v1["current_stage"] == "None"
    # Model assets underneath.
    asset = asset_lookup.resolve(ctx, WS, "model", "m", version="1")
    assert asset["path"] == URL and asset["tags"] == {"t": "x"} and asset["description"] == "first"
    assert asset["properties"]["mlflow.source"] == URL

    registered_models.set_registered_model_alias(ctx, WS, {"name": "m", "alias": "prod", "version": "1"})
    registered_models.set_registered_model_alias(ctx, WS, {"name": "m", "alias": "prod", "version": "2"})  # moves
    got = registered_models.get_model_version_by_alias(ctx, WS, {"name": "m", "alias": "prod"})["model_version"]
    assert got["version"] == "2" and got["aliases"] == ["prod"]
    rm = registered_models.get_registered_model(ctx, WS, {"name": "m"})["registered_model"]
    assert rm["aliases"] == [{"alias": "prod", "version": "2"}]
    assert [v["version"] for v in rm["latest_versions"]] == ["2"]

    model_versions.transition_model_version_stage(ctx, WS, {"name": "m", "version": "1", "stage": "staging"})
    model_versions.transition_model_version_stage(
        ctx, WS, {"name": "m", "version": "2", "stage": "Staging", "archive_existing_versions": True}
    )
    stages = {
        v["version"]: v["current_stage"]
        for v in registered_models.get_latest_versions(ctx, WS, {"name": "m"})["model_versions"]
    }
    assert stages == {"1": "Archived", "2": "Staging"}
    assert asset_lookup.resolve(ctx, WS, "model", "m", version="1")["stage"] == "Archived"

    found = model_versions.search_model_versions(ctx, WS, {"filter": "name = 'm' AND tags.t = 'x'"})["model_versions"]
    assert [v["version"] for v in found] == ["1"]
    found = registered_models.search_registered_models(ctx, WS, {"filter": "name ILIKE 'M'"})["registered_models"]
    assert [m["name"] for m in found] == ["m"]

    registered_models.rename_registered_model(ctx, WS, {"name": "m", "new_name": "m2"})
    assert model_versions.get_model_version(ctx, WS, {"name": "m2", "version": "2"})["model_version"]["aliases"] == [
        "prod"
    ]
    model_versions.delete_model_version(ctx, WS, {"name": "m2", "version": "2"})
    with pytest.raises(NotFoundError):
        registered_models.get_model_version_by_alias(ctx, WS, {"name": "m2", "alias": "prod"})
    registered_models.delete_registered_model(ctx, WS, {"name": "m2"})
    with pytest.raises(NotFoundError):
        registered_models.get_registered_model(ctx, WS, {"name": "m2"})
    with pytest.raises(NotFoundError):
        asset_lookup.resolve(ctx, WS, "model", "m2", version="1")
    # A new model of the same name starts over at version 1, as in MLflow.
    registered_models.create_registered_model(ctx, WS, {"name": "m2"})
    assert _version(ctx, "m2")["version"] == "1"


def test_registry_argument_errors(ctx):
    registered_models.create_registered_model(ctx, WS, {"name": "e"})
    _version(ctx, "e")
    for call, data in (
        (registered_models.create_registered_model, {"name": "has space"}),
        (registered_models.create_registered_model, {}),
        (registered_models.set_registered_model_alias, {"name": "e", "alias": "latest", "version": "1"}),
        (registered_models.set_registered_model_alias, {"name": "e", "alias": "V2", "version": "1"}),
        (model_versions.transition_model_version_stage, {"name": "e", "version": "1", "stage": "prod"}),
        (registered_models.search_registered_models, {"filter": "run_id = 'x'"}),
        (model_versions.search_model_versions, {"order_by": ["nonsense"]}),
        (registered_models.search_registered_models, {"max_results": 5000}),
        (model_versions.create_model_version, {"name": "e", "source": "/local/path"}),
        (model_versions.create_model_version, {"name": "e", "source": "file:///tmp/x"}),
        (model_versions.create_model_version, {"name": "e", "source": "models:/m-nope"}),
        (model_versions.create_model_version, {"name": "e", "source": "runs:/nope/model"}),
        (model_versions.create_model_version, {"name": "e", "source": "mlflow-artifacts:/ExperimentRun/dcid.x/m"}),
    ):
        with pytest.raises(UserError):
            call(ctx, WS, data)
    with pytest.raises(NotFoundError):
        model_versions.get_model_version(ctx, WS, {"name": "e", "version": "9"})
    assert [
        v["version"] for v in model_versions.search_model_versions(ctx, WS, {"filter": "name = 'e'"})["model_versions"]
    ] == ["1"]
