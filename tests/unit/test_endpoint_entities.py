"""Online endpoint and deployment entities: Azure's fields, defaults and the rules on them."""

from __future__ import annotations

import pytest

from shoal.cli.endpoints import parse_traffic
from shoal.entities.endpoint import ManagedOnlineDeployment, ManagedOnlineEndpoint
from shoal.entities.kinds import parse_entity
from shoal.entities.loader import load_entity
from shoal.errors import SpecError, UserError

from .conftest import YAML_DIR


def test_deployment_yaml_paths_are_made_absolute_and_defaults_are_azures() -> None:
    dep = load_entity("online_deployment", YAML_DIR / "online_deployment/blue-deployment.yml")
    assert isinstance(dep, ManagedOnlineDeployment)
    assert dep.model["path"] == str((YAML_DIR / "model").resolve()) + "/"
    assert dep.code_configuration.code.startswith(str(YAML_DIR.resolve()))
    assert dep.request_settings.max_concurrent_requests_per_instance == 2
    assert (dep.liveness_probe.period, dep.liveness_probe.failure_threshold, dep.liveness_probe.timeout) == (5, 3, 2)
    plain = parse_entity("online_deployment", {"name": "blue", "model": "azureml:m:1"})
    assert plain.instance_count == 1 and plain.request_settings is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "my-ep", "traffic": {"blue": 50}}, "add up to 50"),
        ({"name": "my-ep", "traffic": {"blue": 101}}, "from 0 to 100"),
        ({"name": "my-ep", "mirror_traffic": {"green": 60}}, "at most 50"),
        ({"name": "my-ep", "traffic": {"blue": 100}, "mirror_traffic": {"blue": 10}}, "cannot also be mirrored"),
        ({"name": "1-bad"}, "endpoint name"),
        ({"name": "my-ep", "auth_mode": "password"}, "auth_mode"),
    ],
)
def test_endpoint_rules(body: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_entity("online_endpoint", body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "blue"}, "needs a model, a code_configuration"),
        ({"name": "blue", "code_configuration": {"code": ".", "scoring_script": "s.py"}}, "needs an environment"),
        ({"name": "blue", "model": {"name": "m"}}, "needs a 'path'"),
        ({"name": "blue", "model": "azureml:m:1", "instance_count": 0}, "instance_count"),
        ({"name": "blue", "model": "azureml:m:1", "instance_typo": "x"}, "instance_typo"),
    ],
)
def test_deployment_rules(body: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_entity("online_deployment", body)


def test_read_only_fields_are_dropped_on_create() -> None:
    ep = ManagedOnlineEndpoint(name="my-ep", scoring_uri="http://x/score", provisioning_state="Succeeded")
    assert "scoring_uri" not in ep.without_read_only().to_dict()


def test_traffic_flag() -> None:
    assert parse_traffic("blue=90 green=10", "--traffic") == {"blue": 90, "green": 10}
    assert parse_traffic("blue=90,green=10", "--traffic") == {"blue": 90, "green": 10}
    with pytest.raises(UserError, match="name=percent"):
        parse_traffic("blue:90", "--traffic")


def test_every_endpoint_route_names_its_guard() -> None:
    """Management routes take the one permission check; the scoring route its own key check, as
    an explicit dependency, so nothing under /onlineEndpoints is open by accident."""
    from shoal.server.auth import Require
    from shoal.server.routes.endpoints import EndpointKey, router

    routes = [r for r in router.routes if "/onlineEndpoints" in getattr(r, "path", "")]
    assert len(routes) >= 12
    for route in routes:
        guards = [d.dependency for d in route.dependencies]
        wanted = EndpointKey if route.path.endswith(("/score", "/swagger.json")) else Require
        assert any(isinstance(g, wanted) for g in guards), route.path


def test_batch_deployment_settings_flat_or_nested_and_by_type() -> None:
    from shoal.entities.batch_endpoint import ModelBatchDeployment, PipelineComponentBatchDeployment

    common = {"name": "dpl", "model": "azureml:m:1", "environment": "azureml:e:1"}
    code = {"code_configuration": {"code": "azureml:c:1", "scoring_script": "s.py"}}
    flat = parse_entity("batch_deployment", {**common, **code, "mini_batch_size": 5, "output_action": "summary_only"})
    assert isinstance(flat, ModelBatchDeployment)
    assert (flat.settings.mini_batch_size, flat.settings.output_action, flat.settings.error_threshold) == (
        5,
        "summary_only",
        -1,
    )
    pipeline = parse_entity("batch_deployment", {"name": "dpl", "type": "pipeline", "component": "azureml:c@latest"})
    assert isinstance(pipeline, PipelineComponentBatchDeployment)
    with pytest.raises(SpecError, match="code_configuration"):
        parse_entity("batch_deployment", common)
    with pytest.raises(SpecError, match="output_action"):
        parse_entity("batch_deployment", {**common, **code, "settings": {"output_action": "append_column"}})


def test_batch_routes_take_the_permission_check() -> None:
    from shoal.server.auth import Require
    from shoal.server.routes.batch_endpoints import router

    assert router.routes
    for route in router.routes:
        assert any(isinstance(d.dependency, Require) for d in route.dependencies), route.path
