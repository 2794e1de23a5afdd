"""The expander: walks a pipeline job's steps (producers first), resolves their components, and
makes command and sweep steps into leaves and pipeline steps into nested pipelines; ``expand``
is the entry point and raises one SpecError listing every problem."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from shoal.entities import spark
from shoal.entities.expressions import EXPRESSION_RE, binding_of
from shoal.entities.pipeline_graph import parallel
from shoal.entities.pipeline_graph.bindings import Binder
from shoal.entities.pipeline_graph.model import (
    COMPONENT_JOB_FIELDS,
    STEP_JOB_FIELDS,
    STEP_TYPES,
    SWEEP_FIELDS,
    UNSET,
    ComponentResolver,
    Graph,
    Leaf,
    Node,
    Value,
    field_of,
    join_field,
    step_path,
)
from shoal.errors import SpecError

KNOWN_SETTINGS = {
    "default_compute",
    "default_datastore",
    "continue_on_step_failure",
    "force_rerun",
    "default_environment",
    "continue_run_on_failed_optional_input",
    "on_init",
    "on_finalize",
    "timeout",
}


# Why a step type does not run here, added to the error that names it.
UNSUPPORTED_STEPS = {
    "automl": ": Shoal does not run AutoML, Azure's hosted model search",
    "data_transfer": ": Shoal does not run data transfer jobs (they copy from external databases and stores)",
    "import": ": Shoal does not run data imports (they read external databases and stores)",
}


def _strip_azureml(value: Any) -> Any:
    return value.split(":", 1)[1] if isinstance(value, str) and value.startswith("azureml:") else value


class Expander(Binder):
    """One expansion: the pipelines and leaves found so far, and the component resolver."""

    def __init__(self, resolve: ComponentResolver, settings: Mapping[str, Any]) -> None:
        super().__init__()
        self.resolve = resolve
        self.settings = settings
        self.nodes: dict[str, Node] = {}
        self.leaves: dict[str, Leaf] = {}

    # components

    def component(self, ref: Any, where: str) -> tuple[dict[str, Any] | None, str | None]:
        if isinstance(ref, Mapping):
            return copy.deepcopy(dict(ref)), None
        if isinstance(ref, str) and ref.strip():
            if ref.startswith("file:") or ref.endswith((".yml", ".yaml")):
                self.error(where, f"local component file {ref!r} was not inlined; submit it with the CLI or SDK")
                return None, None
            try:
                return copy.deepcopy(self.resolve(ref, where)), ref
            except SpecError as exc:
                self.error(where, exc.message)
            except Exception as exc:  # noqa: BLE001 - a missing component is the user's error here
                self.error(where, getattr(exc, "message", str(exc)))
            return None, None
        self.error(where, "must be a component reference (azureml:<name>:<version>) or a component spec")
        return None, None

    # steps

    def pipeline(self, node: Node, jobs: Mapping[str, Any], default_compute: Any) -> None:
        where_jobs = join_field(field_of(node.path), "jobs")
        if not isinstance(jobs, Mapping) or not jobs:
            self.error(where_jobs, "a pipeline needs at least one step")
            return
        siblings: dict[str, Leaf | Node] = {}
        for name in self.step_order(jobs, where_jobs):
            step = jobs[name]
            where = join_field(where_jobs, name)
            if not isinstance(step, Mapping):
                self.error(where, "a step must be a mapping")
                continue
            made = self.step(node, name, dict(step), where, siblings, default_compute)
            if made is not None:
                siblings[name] = made
                node.steps.append(made.path)

    def step_order(self, jobs: Mapping[str, Any], where: str) -> list[str]:
        """Steps in binding order (producers first); a cycle is an error naming it."""
        deps: dict[str, set[str]] = {}
        for name, step in jobs.items():
            found: set[str] = set()
            for text in _strings(step.get("inputs") if isinstance(step, Mapping) else None):
                for match in EXPRESSION_RE.finditer(text):
                    parts = match.group(1).split(".")
                    if parts[0] == "jobs":
                        parts = ["parent", *parts]
                    if parts[:2] == ["parent", "jobs"] and len(parts) >= 3 and parts[2] in jobs:
                        found.add(parts[2])
            deps[name] = found
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(name: str, trail: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = trail[trail.index(name) :] + [name]
                self.error(join_field(where, name), f"steps form a cycle: {' -> '.join(cycle)}")
                return
            state[name] = 1
            for dep in sorted(deps[name]):
                visit(dep, [*trail, name])
            state[name] = 2
            order.append(name)

        for name in jobs:
            visit(name, [])
        return order

    def step(
        self,
        node: Node,
        name: str,
        step: dict[str, Any],
        where: str,
        siblings: Mapping[str, Leaf | Node],
        default_compute: Any,
    ) -> Leaf | Node | None:
        path = step_path(node.path, name)
        component, ref = (None, None)
        if step.get("component") is not None:
            component, ref = self.component(step["component"], join_field(where, "component"))
            if component is None:
                return None
        type_name = step.get("type") or (component or {}).get("type") or "command"
        if component is not None and (component.get("type") or "command") != type_name:
            self.error(
                join_field(where, "type"), f"the step is '{type_name}' but its component is '{component.get('type')}'"
            )
            return None
        if type_name not in STEP_TYPES:
            why = UNSUPPORTED_STEPS.get(type_name, "")
            self.error(
                join_field(where, "type"),
                f"step type '{type_name}' is not supported in pipelines yet{why} (supported: {', '.join(STEP_TYPES)})",
            )
            return None
        if "services" in step:
            self.warnings.append(f"{join_field(where, 'services')}: services are accepted and ignored on Shoal")
        fields = self.scalar_fields(step, where, node)
        given = {
            str(k): self.bind(v, join_field(join_field(where, "inputs"), str(k)), node, siblings)
            for k, v in (step.get("inputs") or {}).items()
        }
        compute = fields.get("compute") or default_compute
        if type_name == "pipeline":
            if component is None:
                self.error(join_field(where, "component"), "a pipeline step needs a pipeline component")
                return None
            return self.nested(node, name, path, step, fields, component, ref, given, where, compute)
        if type_name == "sweep":
            return self.sweep(node, name, path, step, fields, given, where, compute)
        if type_name == "parallel":
            return self.parallel(node, name, path, step, fields, component, ref, given, where, compute)
        if type_name == "spark":
            return self.spark(node, name, path, step, fields, component, ref, given, where, compute)
        return self.leaf(node, name, path, step, fields, component, ref, given, where, compute)

    def sweep(
        self,
        node: Node,
        name: str,
        path: str,
        step: dict[str, Any],
        fields: dict[str, Any],
        given: dict[str, Value],
        where: str,
        compute: Any,
    ) -> Leaf | None:
        """A sweep step: its trial (a command component) runs as the trials of a sweep job; the
        sweep's outputs (its best trial's) feed the next steps."""
        if step.get("trial") is None:
            self.error(join_field(where, "trial"), "a sweep step needs a trial (a command component)")
            return None
        trial, ref = self.component(step["trial"], join_field(where, "trial"))
        if trial is None:
            return None
        if not trial.get("command"):
            self.error(join_field(where, "trial"), "a sweep's trial needs a command")
            return None
        if (trial.get("type") or "command") != "command":
            self.error(
                join_field(where, "trial"), f"a sweep's trial must be a command component, not {trial.get('type')!r}"
            )
            return None
        space = step.get("search_space") if isinstance(step.get("search_space"), Mapping) else {}
        ports = {k: v for k, v in (trial.get("inputs") or {}).items() if k not in space}
        inputs = self.bind_ports(ports, given, join_field(where, "inputs"), _comp_label(trial, ref))
        declared_outputs = {k: dict(v or {}) for k, v in (trial.get("outputs") or {}).items()}
        outputs = self.leaf_outputs(node, path, step.get("outputs") or {}, declared_outputs, where, True)
        job: dict[str, Any] = {"type": "sweep", "trial": trial}
        for key in SWEEP_FIELDS:
            if step.get(key) is not None:
                job[key] = step[key]
        for key in STEP_JOB_FIELDS:
            if fields.get(key) is not None and key not in ("code", "environment", "distribution"):
                job[key] = fields[key]
        if compute:
            job["compute"] = compute
        job.setdefault("display_name", name)
        return self.add_leaf(
            Leaf(path, name, node.path, job, inputs, outputs, trial, ref, deterministic=False, kind="sweep")
        )

    def parallel(
        self,
        node: Node,
        name: str,
        path: str,
        step: dict[str, Any],
        fields: dict[str, Any],
        component: dict[str, Any] | None,
        ref: str | None,
        given: dict[str, Value],
        where: str,
        compute: Any,
    ) -> Leaf | None:
        """A parallel step: the command step running its entry script over mini batches
        (``pipeline_graph.parallel``); its ``input_data`` is downloaded (a ``direct`` one too:
        the driver reads files)."""
        if component is None:
            self.error(join_field(where, "component"), "a parallel step needs a parallel component")
            return None
        command = parallel.as_command(component, self.error, join_field(where, "component"))
        if command is None:
            return None
        given = {**given, parallel.DRIVER_INPUT: Value("data", path=parallel.DRIVER_PLACEHOLDER, type="uri_file")}
        leaf = self.leaf(node, name, path, {**step, "type": "command"}, fields, command, ref, given, where, compute)
        data = parallel.input_name(component)
        value = leaf.inputs.get(data)
        if value is not None and value.mode == "direct":
            leaf.inputs[data] = Value(value.kind, path=value.path, ref=value.ref, type=value.type, mode="ro_mount")
            self.warnings.append(
                f"{join_field(where, 'inputs')}.{data}: mode direct is read as ro_mount (the parallel step reads files)"
            )
        return leaf

    def spark(
        self,
        node: Node,
        name: str,
        path: str,
        step: dict[str, Any],
        fields: dict[str, Any],
        component: dict[str, Any] | None,
        ref: str | None,
        given: dict[str, Value],
        where: str,
        compute: Any,
    ) -> Leaf | None:
        """A spark step: the command step running ``spark-submit --master local[N]`` (``shoal.entities.spark``);
        the step's own spark fields (conf, args, entry, resources) override its component's."""
        source = dict(component or {})
        source.update({k: v for k, v in step.items() if k in spark.SPARK_ONLY_FIELDS or k in ("resources", "code")})
        source["display_name"] = source.get("display_name") or name
        if compute:
            source["compute"] = compute
        command = spark.as_command(source, self.error, where)
        if command is None:
            return None
        command.pop("compute", None)
        fields = {k: v for k, v in fields.items() if k != "resources"}
        if command.get("resources"):
            fields["resources"] = command["resources"]
        leaf = self.leaf(node, name, path, {**step, "type": "command"}, fields, command, ref, given, where, compute)
        for key, value in list(leaf.inputs.items()):
            if value.is_data and value.mode == "direct":
                leaf.inputs[key] = Value(value.kind, path=value.path, ref=value.ref, type=value.type, mode="ro_mount")
        for settings in leaf.outputs.values():
            if settings.get("mode") == "direct":
                settings["mode"] = "rw_mount"
        return leaf

    def add_leaf(self, leaf: Leaf) -> Leaf:
        """Record a leaf; it waits for the leaves whose outputs its inputs are bound to."""
        leaf.depends_on = {v.ref.step for v in leaf.inputs.values() if v.kind == "output" and v.ref is not None}
        self.leaves[leaf.path] = leaf
        return leaf

    def leaf(
        self,
        node: Node,
        name: str,
        path: str,
        step: dict[str, Any],
        fields: dict[str, Any],
        component: dict[str, Any] | None,
        ref: str | None,
        given: dict[str, Value],
        where: str,
        compute: Any,
    ) -> Leaf:
        job: dict[str, Any] = {}
        if component is not None:
            for key in COMPONENT_JOB_FIELDS:
                if component.get(key) is not None:
                    job[key] = component[key]
            inputs = self.bind_ports(
                component.get("inputs") or {}, given, join_field(where, "inputs"), _comp_label(component, ref)
            )
            declared_outputs = {k: dict(v or {}) for k, v in (component.get("outputs") or {}).items()}
            deterministic = component.get("is_deterministic", True) is not False
        else:
            if not step.get("command"):
                self.error(join_field(where, "command"), "an inline command step needs a command (or a component)")
            job["command"] = step.get("command")
            inputs = {}
            for key, value in given.items():
                inputs[key] = value
            declared_outputs = {
                k: dict(v) if isinstance(v, Mapping) else {} for k, v in (step.get("outputs") or {}).items()
            }
            deterministic = step.get("is_deterministic", True) is not False
            component = {
                k: step.get(k)
                for k in ("command", "code", "environment", "distribution", "resources", "environment_variables")
                if step.get(k) is not None
            }
            component["inputs"] = {
                k: {"type": v.type or ("string" if v.kind == "literal" else "uri_folder")} for k, v in inputs.items()
            }
        for key in STEP_JOB_FIELDS:
            if fields.get(key) is not None:
                job[key] = fields[key]
        if compute:
            job["compute"] = compute
        job.setdefault("display_name", name)
        if job.get("command") is None:
            job.pop("command", None)
        outputs = self.leaf_outputs(
            node, path, step.get("outputs") or {}, declared_outputs, where, component is not None
        )
        return self.add_leaf(Leaf(path, name, node.path, job, inputs, outputs, component, ref, deterministic))

    def nested(
        self,
        node: Node,
        name: str,
        path: str,
        step: dict[str, Any],
        fields: dict[str, Any],
        component: dict[str, Any],
        ref: str | None,
        given: dict[str, Value],
        where: str,
        compute: Any,
    ) -> Node | None:
        if path.count("/") >= 20:
            self.error(where, "pipelines are nested more than 20 deep")
            return None
        inputs = self.bind_ports(
            component.get("inputs") or {}, given, join_field(where, "inputs"), _comp_label(component, ref)
        )
        declared = {k: dict(v or {}) for k, v in (component.get("outputs") or {}).items()}
        step_outputs = step.get("outputs") or {}
        outer_bindings: dict[str, str] = {}
        for out_name, value in step_outputs.items():
            at = join_field(join_field(where, "outputs"), str(out_name))
            if out_name not in declared:
                have = ", ".join(sorted(declared)) or "none"
                self.error(at, f"the pipeline component declares no output '{out_name}' (outputs: {have})")
                continue
            expr = binding_of(value)
            if expr is not None:
                parts = expr.split(".")
                if parts[:2] != ["parent", "outputs"] or len(parts) != 3 or parts[2] not in node.outputs:
                    self.error(
                        at, f"an output can only bind to a declared ${{{{parent.outputs.<name>}}}}, not {value!r}"
                    )
                    continue
                outer_bindings[str(out_name)] = parts[2]
                declared[str(out_name)].update({k: v for k, v in node.outputs[parts[2]].items() if v is not None})
            elif isinstance(value, Mapping):
                declared[str(out_name)].update({k: v for k, v in value.items() if v is not None})
        child = Node(path=path, name=name, parent=node.path, inputs=inputs, outputs=declared, spec=component)
        child.spec = {**component, "display_name": fields.get("display_name") or name}
        self.nodes[path] = child
        self.pipeline(child, component.get("jobs") or {}, compute)
        for out_name, target in outer_bindings.items():
            bound = child.bound_outputs.get(out_name)
            if bound is None:
                self.error(
                    join_field(join_field(where, "outputs"), out_name),
                    "the pipeline component does not bind this output",
                )
            elif target in node.bound_outputs:
                self.error(
                    join_field(join_field(where, "outputs"), out_name), f"pipeline output '{target}' is already bound"
                )
            else:
                node.bound_outputs[target] = bound
                if node.outputs[target].get("type") is None:
                    node.outputs[target]["type"] = child.outputs[out_name].get("type")
        _default_output_types(child.outputs)
        return child


def _default_output_types(outputs: Mapping[str, dict[str, Any]]) -> None:
    """Outputs still untyped once their bindings are followed are folders."""
    for out in outputs.values():
        if out.get("type") is None:
            out["type"] = "uri_folder"


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _comp_label(component: Mapping[str, Any], ref: str | None) -> str:
    return ref or str(component.get("name") or "inline")


def _pipeline_inputs(ex: Expander, spec: Mapping[str, Any]) -> dict[str, Value]:
    inputs: dict[str, Value] = {}
    for name, value in (spec.get("inputs") or {}).items():
        where = f"inputs.{name}"
        if isinstance(value, str) and EXPRESSION_RE.search(value):
            ex.error(where, "a pipeline job's own inputs cannot use ${{…}} bindings")
            inputs[str(name)] = UNSET
            continue
        inputs[str(name)] = ex.bind(value, where, Node("", "", None, {}, {}), {})
    return inputs


def expand(spec: Mapping[str, Any], resolve: ComponentResolver) -> Graph:
    """Expand a pipeline job (its dict, with local files already uploaded and component files
    inlined) into leaf steps; raises one SpecError listing every problem found."""
    settings = dict(spec.get("settings") or {})
    ex = Expander(resolve, settings)
    for key in settings:
        if key not in KNOWN_SETTINGS:
            ex.warnings.append(f"settings.{key}: unknown setting, ignored")
    if "services" in spec:
        ex.warnings.append("services: accepted and ignored on Shoal")
    outputs = {str(k): dict(v) if isinstance(v, Mapping) else {} for k, v in (spec.get("outputs") or {}).items()}
    inputs = _pipeline_inputs(ex, spec)
    jobs = spec.get("jobs") or {}
    root = Node(path="", name=str(spec.get("name") or ""), parent=None, inputs=inputs, outputs=outputs, spec=dict(spec))
    if spec.get("component") is not None and not jobs:
        component, ref = ex.component(spec["component"], "component")
        if component is not None:
            if component.get("type") != "pipeline":
                ex.error("component", "a pipeline job's component must be a pipeline component")
            else:
                root.inputs = ex.bind_ports(
                    component.get("inputs") or {}, inputs, "inputs", _comp_label(component, ref)
                )
                for name, out in (component.get("outputs") or {}).items():
                    given = {k: v for k, v in root.outputs.get(str(name), {}).items() if v is not None}
                    root.outputs[str(name)] = {**dict(out or {}), **given}
                jobs = component.get("jobs") or {}
                root.spec = {**root.spec, "jobs": jobs}
    ex.nodes[""] = root
    ex.pipeline(root, jobs, _strip_azureml(settings.get("default_compute")))
    _default_output_types(root.outputs)
    for name in root.outputs:
        if name not in root.bound_outputs:
            ex.warnings.append(f"outputs.{name}: no step output is bound to this pipeline output")
    if ex.errors:
        count = len(ex.errors)
        head = ex.errors[0]["message"]
        more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
        raise SpecError(f"pipeline job: {head}{more}", details={"errors": ex.errors, "warnings": ex.warnings})
    return Graph(root=root, nodes=ex.nodes, leaves=ex.leaves, settings=settings, warnings=ex.warnings)
