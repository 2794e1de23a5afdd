"""The kind registry drives the edges: REST routes, the SDK's operation groups and the CLI nouns
all come from ``shoal.entities.kind_names`` / ``shoal.entities.kinds``, and agree with it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer.main

from shoal.entities import kind_names, refs
from shoal.entities.kind_names import KIND_NAMES, PLURAL_KINDS, REGISTRY_PLURALS, VERSIONED_KINDS
from shoal.entities.kinds import KIND_BY_PLURAL, KINDS

API = "/api/v1"
WS = f"{API}/workspaces/{{workspace}}"
# Path segments under a workspace that are not kinds.
# role-assignments: team mode, not a kind; studio: what the studio's pages read
NOT_KINDS = {"mlflow", "default-datastore", "role-assignments", "studio"}


def _walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str, str]]:
    """(path, method, name) for every route, through included routers (old and new FastAPI)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = route.include_context
            extra = context.get("prefix", "") if isinstance(context, dict) else getattr(context, "prefix", "")
            yield from _walk(inner.routes, prefix + (extra or ""))
            continue
        for method in getattr(route, "methods", None) or ():
            yield prefix + route.path, method, route.name


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str, str]]:
    from shoal.config import ShoalSettings
    from shoal.server.app import create_app

    app = create_app(ShoalSettings(home=tmp_path_factory.mktemp("home")))
    try:
        return set(_walk(app.routes))
    finally:
        app.state.ctx.close()


# -- one table ------------------------------------------------------------------------------


def test_every_loaded_kind_takes_its_names_from_the_one_table():
    for kind, spec in KINDS.items():
        assert spec.names is KIND_NAMES[kind]
        assert (spec.plural, spec.versioned, spec.sdk_group, spec.cli_noun) == (
            KIND_NAMES[kind].plural,
            KIND_NAMES[kind].versioned,
            KIND_NAMES[kind].sdk_group,
            KIND_NAMES[kind].cli_noun,
        )
    assert {KIND_NAMES[k].plural: k for k in KINDS} == KIND_BY_PLURAL
    assert len(PLURAL_KINDS) == len(KIND_NAMES), "two kinds share a plural"
    assert set(VERSIONED_KINDS) == {k for k, spec in KINDS.items() if spec.versioned}


def test_refs_read_their_plurals_from_the_table():
    assert refs.PLURAL_KINDS is kind_names.PLURAL_KINDS
    assert set(REGISTRY_PLURALS) <= set(PLURAL_KINDS)
    assert {PLURAL_KINDS[p] for p in REGISTRY_PLURALS} == {k for k, n in KIND_NAMES.items() if n.in_registry}
    for plural, kind in PLURAL_KINDS.items():
        ref = refs.parse_asset_ref(f"azureml://locations/x/workspaces/ws/{plural}/n/versions/1")
        assert ref.kind == kind
    for plural in REGISTRY_PLURALS:
        ref = refs.parse_asset_ref(f"azureml://registries/r/{plural}/n/versions/1")
        assert str(ref) == f"azureml://registries/r/{plural}/n/versions/1"


def test_services_agree_on_the_versioned_kinds():
    from shoal.services.references import assets as lookup

    assert lookup.VERSIONED_KINDS is VERSIONED_KINDS


# -- REST -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", VERSIONED_KINDS)
def test_every_versioned_kind_has_its_rest_routes(routes, kind):
    base = f"{WS}/{KIND_NAMES[kind].plural}"
    expected = {
        (base, "GET", f"list_{KIND_NAMES[kind].plural}"),
        (f"{base}/{{name}}/versions", "POST", f"create_{kind}_next"),
        (f"{base}/{{name}}/versions/{{version}}", "PUT", f"put_{kind}"),
        (f"{base}/{{name}}/versions/{{version}}", "GET", f"get_{kind}"),
        (f"{base}/{{name}}/versions/{{version}}", "PATCH", f"update_{kind}"),
        (f"{base}/{{name}}/labels/{{label}}", "GET", f"get_{kind}_label"),
        (f"{base}/{{name}}/archive", "POST", f"archive_{kind}"),
        (f"{base}/{{name}}/restore", "POST", f"restore_{kind}"),
    }
    assert expected <= routes


def test_every_rest_plural_comes_from_the_registry(routes):
    segments = {path[len(WS) + 1 :].split("/")[0] for path, _, _ in routes if path.startswith(WS + "/")}
    assert segments - NOT_KINDS <= set(KIND_BY_PLURAL), segments - NOT_KINDS - set(KIND_BY_PLURAL)
    # every kind Shoal loads is served: workspaces at /workspaces, the others under a workspace
    assert {(f"{API}/workspaces", "GET")} <= {(p, m) for p, m, _ in routes}
    # Deployments are served under their endpoint: /onlineEndpoints/{e}/deployments, /batchEndpoints/{e}/deployments.
    nested = {
        KIND_NAMES[k].plural: KIND_NAMES[k.replace("deployment", "endpoint")].plural
        for k in ("online_deployment", "batch_deployment")
    }
    assert set(KIND_BY_PLURAL) - {KIND_NAMES["workspace"].plural} - set(nested) <= segments
    assert all(any(f"/{parent}/{{endpoint}}/deployments" in p for p, _, _ in routes) for parent in nested.values())


# -- SDK ------------------------------------------------------------------------------------


def test_every_kind_with_an_sdk_group_is_an_mlclient_attribute():
    from shoal.client.ml_client import ASSET_GROUPS, GROUP_CLASSES, MLClient, group_class

    groups = {kind: spec.sdk_group for kind, spec in KINDS.items() if spec.sdk_group}
    assert set(VERSIONED_KINDS) <= set(groups)
    assert set(GROUP_CLASSES) == set(groups)
    assert {kind: groups[kind] for kind in VERSIONED_KINDS} == ASSET_GROUPS
    annotations = {name for name in MLClient.__annotations__ if not name.startswith("__")}
    assert annotations == set(groups.values())
    with MLClient(http_client=httpx.Client(), base_url="http://shoal", token="t") as client:
        for kind, attribute in groups.items():
            group = getattr(client, attribute)
            assert isinstance(group, group_class(kind))
            if kind in VERSIONED_KINDS:
                assert group.kind == kind


# -- CLI ------------------------------------------------------------------------------------


def _cli() -> Any:
    from shoal.cli.main import app

    return typer.main.get_command(app)


def test_every_versioned_kind_has_a_cli_noun_except_code():
    assert [k for k in VERSIONED_KINDS if not KIND_NAMES[k].cli_noun] == ["code"]  # az ml has no `code` noun


@pytest.mark.parametrize("kind", [k for k, n in KIND_NAMES.items() if n.cli_noun])
def test_every_cli_noun_has_create_show_list(kind):
    noun = _cli().commands[KIND_NAMES[kind].cli_noun]
    assert {"create", "show", "list"} <= set(noun.commands)


def test_the_cli_nouns_are_the_registrys():
    from shoal.cli.main import NOUN_APPS

    nouns = {n.cli_noun for n in KIND_NAMES.values() if n.cli_noun}
    assert nouns <= set(_cli().commands)
    assert set(NOUN_APPS) == {k for k, n in KIND_NAMES.items() if n.cli_noun}


def test_create_flags_are_declared_per_kind():
    from shoal.cli.kind_flags import CREATE_FLAGS

    with_noun = {k for k, n in KIND_NAMES.items() if n.cli_noun}
    assert set(CREATE_FLAGS) == with_noun - {
        "job",
        "online_endpoint",
        "online_deployment",
        "batch_endpoint",
        "batch_deployment",
    }
    for kind, spec in CREATE_FLAGS.items():
        create = _cli().commands[KIND_NAMES[kind].cli_noun].commands["create"]
        params = [p.name for p in create.params]
        assert params[0] == "file"
        assert params[1 : 1 + len(spec.flags)] == [flag.param for flag in spec.flags]
        assert create.help == spec.doc


def test_create_flags_become_entity_fields(tmp_path: Path):
    from shoal.cli.kind_flags import CREATE_FLAGS
    from shoal.errors import UserError

    env = CREATE_FLAGS["environment"]
    blank = {flag.param: None for flag in env.flags}
    fields = env.fields({**blank, "name": "e", "build_context": "ctx", "dockerfile_path": "Dockerfile"}, None)
    assert "dockerfile_path" not in fields
    assert fields["build"] == {"path": str(Path("ctx").resolve()), "dockerfile_path": "Dockerfile"}
    conda = tmp_path / "conda.yml"
    conda.write_text("name: e\ndependencies: [python=3.11]\n")
    fields = env.fields({**blank, "name": "e", "image": "img", "conda_file": conda, "tags": ["a=b"]}, None)
    assert fields["conda_file"] == {"name": "e", "dependencies": ["python=3.11"]}
    assert fields["build"] is None and fields["tags"] == {"a": "b"}
    with pytest.raises(UserError, match="exclude each other"):
        env.fields({**blank, "image": "i", "build_context": "c"}, None)
    with pytest.raises(UserError, match="needs --image"):
        env.fields({**blank, "conda_file": conda}, None)
    compute = CREATE_FLAGS["compute"]
    fields = compute.fields({**{f.param: None for f in compute.flags}, "name": "c", "type": "AmlCompute"}, None)
    assert fields["type"] == "amlcompute"


def test_mlclient_create_or_update_picks_the_kinds_group():
    from shoal.client.ml_client import MLClient
    from shoal.errors import UserError

    with MLClient(http_client=httpx.Client(), base_url="http://shoal", token="t") as client:
        for kind, spec in KINDS.items():
            entity: Any = type("Stub", (), {"KIND": kind})()
            if kind in ("workspace", "compute", "schedule") or "endpoint" in kind or "deployment" in kind:  # begin_…
                with pytest.raises(UserError):
                    client._group_for(entity)
            else:
                assert client._group_for(entity) is getattr(client, str(spec.sdk_group))
