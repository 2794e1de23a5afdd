"""The "Examples" block of each command's ``--help``, from data: the asset nouns' examples come from
the kind tables (``kind_flags.CREATE_FLAGS``, ``assets.ASSET_COMMANDS``), the rest are written here;
a command without any gets one built from its parameters."""

from __future__ import annotations

import inspect
from typing import Any

import typer

from shoal.entities.kind_names import KIND_NAMES

# A sample name and YAML file per noun, used in the generated lines.
SAMPLES: dict[str, tuple[str, str]] = {
    "workspace": ("team", "workspace.yml"),
    "compute": ("cpu-cluster", "compute.yml"),
    "datastore": ("blobstore", "datastore.yml"),
    "model": ("my-model", "model.yml"),
    "data": ("my-data", "data.yml"),
    "environment": ("my-env", "environment.yml"),
    "component": ("train", "component.yml"),
    "job": ("<job-name>", "job.yml"),
}
# Extra create-from-flags lines, by the create flags a kind has (see kind_flags.CREATE_FLAGS).
FLAG_LINES: dict[str, str] = {
    "path": "-n {name} -v 1 -p ./{noun}",
    "image": "-n {name} -v 1 -i python:3.11-slim -c conda.yml",
    "size": "-n {name} --type amlcompute --size Standard_DS3_v2 --max-instances 2",
    "location": "-n {name} --display-name 'Team workspace'",
}
WRITTEN: dict[tuple[str, str], list[str]] = {
    ("job", "create"): [
        "shoal job create -f job.yml",
        "shoal job create -f job.yml --stream",
        "shoal job create -f job.yml --set inputs.epochs=5 -n my-run --web",
        "shoal job create -f job.yml -g my-rg -w default --query name -o tsv",
    ],
    ("job", "show"): ["shoal job show -n <job-name>", "shoal job show -n <job-name> --query status -o tsv"],
    ("job", "list"): [
        "shoal job list -o table",
        "shoal job list --parent-job-name <pipeline-job> -o table",
        "shoal job list --all-results --include-archived --query '[].name' -o tsv",
    ],
    ("job", "stream"): ["shoal job stream -n <job-name>"],
    ("job", "cancel"): ["shoal job cancel -n <job-name>"],
    ("job", "download"): [
        "shoal job download -n <job-name> -p ./out",
        "shoal job download -n <job-name> --output-name model -p ./out",
        "shoal job download -n <job-name> --all --snapshot",
    ],
    ("job", "update"): ["shoal job update -n <job-name> --set display_name=baseline --set tags.team=ml"],
    ("job", "metrics"): [
        "shoal job metrics -n <job-name> -o table",
        "shoal job metrics -n <job-name> --metric-name loss",
    ],
    ("job", "validate"): ["shoal job validate -f pipeline.yml"],
    ("workspace", "show"): ["shoal workspace show", "shoal workspace show -n team --query mlflow_tracking_uri -o tsv"],
    ("workspace", "list"): ["shoal workspace list -o table"],
    ("workspace", "update"): ["shoal workspace update -n team --description 'Team workspace'"],
    ("compute", "list"): ["shoal compute list -o table", "shoal compute list --type amlcompute"],
    ("compute", "update"): [
        "shoal compute update -n cpu-cluster --max-instances 4",
        "shoal compute update -n my-ci --set idle_time_before_shutdown=PT30M",
    ],
    ("compute", "start"): [
        "shoal compute start -n my-ci",
        "shoal compute show -n my-ci --query \"services[?display_name=='Jupyter Lab'].endpoint_uri\" -o tsv",
    ],
    ("compute", "stop"): ["shoal compute stop -n my-ci"],
    ("compute", "restart"): ["shoal compute restart -n my-ci"],
    ("datastore", "list"): ["shoal datastore list -o table"],
    ("server", "start"): [
        "shoal server start --detach",
        "shoal server start --host 0.0.0.0 --port 8080",
        "shoal server start --host 0.0.0.0 --port 8080 --ray-address ray://head:10001 "
        "--advertise-url http://server-host:8080",
    ],
    ("account", "show"): ["shoal account show", "shoal account show --query roles -o table"],
    ("account", "get-access-token"): [
        "export MLFLOW_TRACKING_TOKEN=$(shoal account get-access-token --query accessToken -o tsv)"
    ],
    ("", "configure"): [
        "shoal configure --defaults workspace=team group=my-rg",
        "shoal configure --list-defaults -o table",
        "shoal configure --defaults workspace=   # unset",
    ],
    ("", "completion"): ['eval "$(shoal completion bash)"', "shoal completion zsh > ~/.zfunc/_shoal"],
    ("", "version"): ["shoal version", "shoal version --query shoal -o tsv"],
    ("", "studio"): ["shoal studio", "shoal studio --no-browser"],
}


def _asset_lines(noun: str, verb: str, params: set[str]) -> list[str]:
    name, file = SAMPLES.get(noun, ("<name>", f"{noun}.yml"))
    versioned = "version" in params or "label" in params
    if verb == "create":
        lines = [f"shoal {noun} create -f {file}"]
        lines += [
            f"shoal {noun} create " + FLAG_LINES[p].format(name=name, noun=noun) for p in FLAG_LINES if p in params
        ]
        if "set" in params:
            lines.append(f"shoal {noun} create -f {file} --set description='from the CLI'")
        return lines
    if verb == "show":
        return (
            [f"shoal {noun} show -n {name} -v 1", f"shoal {noun} show -n {name} --label latest -o yaml"]
            if (versioned)
            else [f"shoal {noun} show -n {name}", f"shoal {noun} show -n {name} -o yaml"]
        )
    if verb == "list":
        lines = [f"shoal {noun} list -o table", f"shoal {noun} list -g my-rg -w default -o jsonc"]
        if "name" in params:
            lines.append(f"shoal {noun} list -n {name} --query '[].version' -o tsv")
        return lines
    if verb == "update":
        version = " -v 1" if versioned else ""
        return [f"shoal {noun} update -n {name}{version} --set description='new text'"] + (
            [f"shoal {noun} update -n {name}{version} --tags team=ml"] if "tags" in params else []
        )
    if verb == "delete":
        return [f"shoal {noun} delete -n {name} --yes"]
    if verb in ("archive", "restore"):
        return [f"shoal {noun} {verb} -n {name} -v 1", f"shoal {noun} {verb} -n {name}   # every version"]
    if verb == "download":
        return [f"shoal {noun} download -n {name} -v 1 -p ./downloads"]
    line = f"shoal {noun} {verb}".replace("  ", " ").strip()
    return [f"{line} -n {name}" if "name" in params else line]


def _params(callback: Any) -> set[str]:
    try:
        return set(inspect.signature(callback).parameters)
    except (TypeError, ValueError):
        return set()


def examples(noun: str, verb: str, callback: Any) -> list[str]:
    return WRITTEN.get((noun, verb)) or _asset_lines(noun, verb, _params(callback))


def epilog(lines: list[str]) -> str:
    # \b: click (and Typer's rich help) keep this paragraph's line breaks.
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


def add_examples(app: typer.Typer) -> None:
    """Give every command of ``app`` (and of its noun groups) an Examples epilog, unless it has one."""
    nouns = {names.cli_noun for names in KIND_NAMES.values() if names.cli_noun}
    groups = [("", app)] + [(str(g.name), g.typer_instance) for g in app.registered_groups if g.typer_instance]
    for noun, group in groups:
        for info in group.registered_commands:
            verb = info.name or (info.callback.__name__ if info.callback else "")
            if info.epilog or not verb:
                continue
            if noun and noun not in nouns and (noun, verb) not in WRITTEN:
                lines = [f"shoal {noun} {verb}"]
            else:
                lines = examples(noun, verb, info.callback)
            info.epilog = epilog(lines)
