"""az's global flags are taken out of the command line in any position (shoal.cli.global_args)."""

from __future__ import annotations

import pytest

from shoal.cli import global_args
from shoal.cli.examples import add_examples


@pytest.mark.parametrize(
    "argv",
    [
        ["-g", "rg", "model", "list", "-w", "default"],
        ["model", "-g", "rg", "list", "--subscription", "s", "-w", "default"],
        ["model", "list", "-w", "default", "--resource-group=rg", "--subscription=s"],
        ["model", "list", "--debug", "-w", "default", "--verbose", "--only-show-errors", "-g", "rg"],
    ],
)
def test_global_flags_are_stripped_anywhere(argv):
    args, found = global_args.strip(argv)
    assert args == ["model", "list", "-w", "default"]
    assert found.resource_group == "rg"


def test_switches_and_the_double_dash():
    args, found = global_args.strip(["job", "create", "--debug", "--", "-g", "x"])
    assert args == ["job", "create", "--", "-g", "x"] and found.debug and found.resource_group is None
    args, found = global_args.strip(["--verbose", "--only-show-errors", "version"])
    assert args == ["version"] and found.verbose and found.only_show_errors


def test_defaults_persist_and_rank_below_the_flag_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("SHOAL_WORKSPACE", raising=False)
    assert global_args.default_workspace(None) is None
    global_args.write_defaults({"workspace": "team", "group": "rg"})
    assert (tmp_path / "shoal" / "config.yaml").is_file()
    assert global_args.read_defaults() == {"group": "rg", "workspace": "team"}
    assert global_args.default_workspace(None) == "team"
    assert global_args.default_workspace("other") == "other"
    monkeypatch.setenv("SHOAL_WORKSPACE", "env")
    assert global_args.default_workspace(None) is None  # the client reads SHOAL_WORKSPACE
    global_args.write_defaults({"workspace": ""})
    assert global_args.read_defaults() == {"group": "rg"}


def test_every_command_has_examples():
    from shoal.cli.main import app

    add_examples(app)
    groups = [app] + [g.typer_instance for g in app.registered_groups]
    missing = [
        f"{group.info.name or ''} {info.name}"
        for group in groups
        for info in group.registered_commands
        if not (info.epilog or "").startswith("Examples:")
    ]
    assert not missing
    create = next(i for g in app.registered_groups if g.name == "model" for i in g.typer_instance.registered_commands)
    assert "shoal model create -n my-model -v 1 -p ./model" in create.epilog
