"""Row classes. Specs are stored as JSON and validated by the entities when read."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BigInteger primary keys autoincrement on PostgreSQL; SQLite only autoincrements INTEGER.
PK = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class WorkspaceRow(Base):
    __tablename__ = "workspace"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    spec: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ResourceRow(Base):
    """Named, unversioned resources of a workspace: compute and datastore."""

    __tablename__ = "resource"
    __table_args__ = (UniqueConstraint("workspace_id", "kind", "name", name="uq_resource_name"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict] = mapped_column(JSON)
    # Fernet token of a JSON dict; never leaves the server unless include_secrets is allowed.
    secrets: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AssetContainerRow(Base):
    """One row per asset name: holds the version counter and the container's archive flag."""

    __tablename__ = "asset_container"
    __table_args__ = (UniqueConstraint("workspace_id", "kind", "name", name="uq_asset_container_name"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    next_version: Mapped[int] = mapped_column(Integer, default=1)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    tags: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AssetVersionRow(Base):
    """An immutable asset version; the primary key orders versions by creation."""

    __tablename__ = "asset_version"
    __table_args__ = (
        UniqueConstraint("container_id", "version", name="uq_asset_version_version"),
        Index("ix_asset_version_latest", "container_id", "archived", "id"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    container_id: Mapped[int] = mapped_column(ForeignKey("asset_container.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict] = mapped_column(JSON)
    # sha256 of the immutable body: an identical re-create is a no-op, another body a conflict.
    spec_hash: Mapped[str] = mapped_column(String(64))
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    stage: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobRow(Base):
    """A job of a workspace: its submitted spec, what the server resolved, and its lifecycle."""

    __tablename__ = "job"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name", name="uq_job_name"),
        Index("ix_job_schedule", "status", "compute", "id"),
        Index("ix_job_parent", "workspace_id", "parent_job_name", "id"),
        Index("ix_job_reuse", "workspace_id", "reuse_key", "id"),
        # `job list`: a workspace's jobs newest first (keyset on id), read in index order.
        Index("ix_job_list", "workspace_id", "id"),
        # The studio's job list of one experiment, top-level jobs newest first, in index order.
        Index("ix_job_experiment_list", "experiment_id", "parent_job_name", "id"),
        # ... and of one status (a rare one, Failed say, is found without reading every job).
        Index("ix_job_status_list", "workspace_id", "parent_job_name", "status", "id"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    # The MLflow side of the job (a job is an MLflow run whose run id is the job name).
    # Indexed by ix_job_run_order (below), which leads with it.
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiment.id", ondelete="SET NULL"), nullable=True)
    lifecycle_stage: Mapped[str] = mapped_column(String(32), default="active", server_default="active")
    run_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    compute: Mapped[str] = mapped_column(String(255))
    experiment_name: Mapped[str] = mapped_column(String(255))
    parent_job_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    spec: Mapped[dict] = mapped_column(JSON)
    # Inputs, outputs, environment and code as the server resolved them at submission.
    resolved: Mapped[dict] = mapped_column(JSON, default=dict)
    status_times: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    # Each start of a runner takes a new attempt; writes carrying an older one are refused.
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    # The compute backend's handle of the current attempt's runner (a pid for ``local``,
    # ``ray:<actor>`` for Ray): what it means is the backend's affair.
    runner_handle: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Why a Queued job is not starting although its compute has room (no Ray node fits it).
    queue_reason: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    # The server (``server_lease.server_id``) whose dispatcher started the current attempt: only
    # it can signal the runner; another server takes the job over once that server's lease ends.
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # A job whose runner was started ahead on the node of another job of its compute, to run its
    # command the moment that job's command ends (the other job's name; see the dispatcher).
    follows: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Pipeline steps: the hash of what determines their outputs (see services/reuse.py).
    reuse_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    start_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# MLflow's run search, newest first within experiments (its default order): read in index order.
Index(
    "ix_job_run_order",
    JobRow.experiment_id,
    func.coalesce(JobRow.start_time, JobRow.created_at),
    JobRow.id,
)


# -- MLflow tracking --------------------------------------------------------------------------


class ExperimentRow(Base):
    """An MLflow experiment. Its MLflow id is ``str(id)``, except the workspace's Default: "0"."""

    __tablename__ = "experiment"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_experiment_name"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(500))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    artifact_location: Mapped[str] = mapped_column(Text)
    lifecycle_stage: Mapped[str] = mapped_column(String(32), default="active")
    tags: Mapped[dict] = mapped_column(JSON, default=dict)
    creation_time: Mapped[int] = mapped_column(BigInteger)
    last_update_time: Mapped[int] = mapped_column(BigInteger)


class MetricRow(Base):
    """One point of a metric. The point is its own primary key: a replayed batch inserts nothing,
    and a history page is one range of that key, read in order (step, timestamp, value, is_nan)
    within one metric of one run. On SQLite the table is ``WITHOUT ROWID``: the key is the table,
    so a point is written once, not into a table plus two indexes."""

    __tablename__ = "metric"
    __table_args__ = {"sqlite_with_rowid": False}

    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    timestamp: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value: Mapped[float] = mapped_column(Double, primary_key=True)
    # NaN is stored as value 0 with this flag (neither database orders or compares NaN well).
    is_nan: Mapped[bool] = mapped_column(Boolean, primary_key=True)


class LatestMetricRow(Base):
    """The last value of each metric of a run: max step, then max timestamp, then max value."""

    __tablename__ = "latest_metric"
    # A search ordered by a metric it also filters on walks the runs in that metric's value order.
    __table_args__ = (Index("ix_latest_metric_value", "key", "value"),)

    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[float] = mapped_column(Double)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    step: Mapped[int] = mapped_column(BigInteger)
    is_nan: Mapped[bool] = mapped_column(Boolean, default=False)


class MetricRollupRow(Base):
    """A metric of a run summed up in buckets of ``2**ROLLUP_SHIFT`` consecutive steps (the studio's
    charts of a 1,000,000-point metric read a thousand of these, not a million points;
    ``store/metric_rollup.py``). Kept by the write path in the statement after the points; NaN
    points are left out. ``n`` and ``total`` count a replayed point again (they serve as
    estimates: how many points a range holds, a bucket's mean); the extremes are exact."""

    __tablename__ = "metric_rollup"
    __table_args__ = {"sqlite_with_rowid": False}

    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[float] = mapped_column(Double)
    vmin: Mapped[float] = mapped_column(Double)
    vmax: Mapped[float] = mapped_column(Double)
    step_min: Mapped[int] = mapped_column(BigInteger)
    step_max: Mapped[int] = mapped_column(BigInteger)
    ts_min: Mapped[int] = mapped_column(BigInteger)
    ts_max: Mapped[int] = mapped_column(BigInteger)


class ParamRow(Base):
    __tablename__ = "param"

    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunTagRow(Base):
    __tablename__ = "run_tag"

    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunInputRow(Base):
    """A dataset a run used (``log-inputs``), kept as MLflow's JSON; one row per (name, digest, context)."""

    __tablename__ = "run_input"
    __table_args__ = (UniqueConstraint("job_id", "name", "digest", "context", name="uq_run_input_dataset"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(500))
    digest: Mapped[str] = mapped_column(String(64))
    context: Mapped[str] = mapped_column(String(255), default="")
    dataset: Mapped[dict] = mapped_column(JSON)
    tags: Mapped[list] = mapped_column(JSON, default=list)


class LoggedModelRow(Base):
    """An MLflow 3 logged model (``mlflow.<flavor>.log_model``): its files live at
    ``artifact_location`` in the workspace's artifact store; params and tags are small maps."""

    __tablename__ = "logged_model"
    __table_args__ = (
        UniqueConstraint("workspace_id", "model_id", name="uq_logged_model_id"),
        Index("ix_logged_model_run_name", "job_id", "name"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(String(64))
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiment.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"), nullable=True)
    name: Mapped[str] = mapped_column(String(500))
    model_type: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(32))
    status_message: Mapped[str] = mapped_column(Text, default="")
    artifact_location: Mapped[str] = mapped_column(Text)
    lifecycle_stage: Mapped[str] = mapped_column(String(32), default="active")
    creator_id: Mapped[str] = mapped_column(String(255), default="")
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    tags: Mapped[dict] = mapped_column(JSON, default=dict)
    creation_time: Mapped[int] = mapped_column(BigInteger)
    last_update_time: Mapped[int] = mapped_column(BigInteger)


class LoggedModelMetricRow(Base):
    """A metric point logged with a ``model_id`` (``log_metric(..., model_id=…)``): besides the
    run's own history it belongs to that logged model, as MLflow's ``logged_model_metrics``."""

    __tablename__ = "logged_model_metric"
    __table_args__ = (
        UniqueConstraint(
            "model_id",
            "job_id",
            "key",
            "timestamp",
            "step",
            "value",
            "is_nan",
            "dataset_name",
            "dataset_digest",
            name="uq_logged_model_metric_point",
        ),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    # The logged model's row id (not its "m-…" id).
    model_id: Mapped[int] = mapped_column(ForeignKey("logged_model.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(250))
    value: Mapped[float] = mapped_column(Double)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    step: Mapped[int] = mapped_column(BigInteger, default=0)
    is_nan: Mapped[bool] = mapped_column(Boolean, default=False)
    dataset_name: Mapped[str] = mapped_column(String(500), default="")
    dataset_digest: Mapped[str] = mapped_column(String(64), default="")


# -- MLflow model registry --------------------------------------------------------------------


class ModelAliasRow(Base):
    """An MLflow registered-model alias (``models:/<name>@<alias>``): a name for one version of a
    model asset. Registered models and their versions are the model assets themselves."""

    __tablename__ = "model_alias"

    container_id: Mapped[int] = mapped_column(ForeignKey("asset_container.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(255), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("asset_version.id", ondelete="CASCADE"), index=True)


# -- schedules --------------------------------------------------------------------------------


class ScheduleRow(Base):
    """A job schedule: its spec (trigger and the job it creates) and when it fires next.

    ``next_fire_at`` is the claim: a server fires a schedule only by moving it forward with a
    conditional update (``store/schedules.claim``), so two servers on one database fire it once."""

    __tablename__ = "schedule"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name", name="uq_schedule_name"),
        # The scheduler's question: which enabled schedules are due?
        Index("ix_schedule_due", "enabled", "next_fire_at"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    spec: Mapped[dict] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # None: nothing left to fire (past end_time), or disabled.
    next_fire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_fire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_job_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    fire_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ServerLeaseRow(Base):
    """A running server (several may share one database): renewed every dispatcher tick; a row
    whose ``expires_at`` has passed belongs to a server that stopped or died."""

    __tablename__ = "server_lease"

    server_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(1024))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ClusterLeaseRow(Base):
    """A duty one server holds at a time (``controllers``: the pipeline and sweep controllers),
    taken by a conditional update and kept by renewing it before ``expires_at``."""

    __tablename__ = "cluster_lease"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OnlineEndpointRow(Base):
    """An online endpoint: its spec (auth mode, traffic, mirror traffic) and its encrypted keys."""

    __tablename__ = "online_endpoint"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_online_endpoint_name"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict] = mapped_column(JSON)
    # Fernet token of {"primaryKey": …, "secondaryKey": …}.
    keys: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OnlineDeploymentRow(Base):
    """A deployment of an endpoint: the spec as given, what it resolved to (model, code and
    environment locations) and its provisioning state; ``generation`` counts its rollouts."""

    __tablename__ = "online_deployment"
    __table_args__ = (UniqueConstraint("endpoint_id", "name", name="uq_online_deployment_name"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("online_endpoint.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict] = mapped_column(JSON)
    resolved: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Several servers on one database: the server running its instances (the endpoints duty's
    # holder) and their addresses, so every server's router can reach them.
    served_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    instances: Mapped[list | None] = mapped_column(JSON, nullable=True)


class BatchEndpointRow(Base):
    """A batch endpoint: its spec (default deployment) and the jobs invoking it started."""

    __tablename__ = "batch_endpoint"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_batch_endpoint_name"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict] = mapped_column(JSON)
    jobs: Mapped[list] = mapped_column(JSON, default=list)  # names of the jobs `invoke` started, oldest first
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BatchDeploymentRow(Base):
    """A deployment of a batch endpoint: the spec as given and what it resolved to."""

    __tablename__ = "batch_deployment"
    __table_args__ = (UniqueConstraint("endpoint_id", "name", name="uq_batch_deployment_name"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("batch_endpoint.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# -- users, tokens, roles, audit (team mode) -------------------------------------------------


class UserRow(Base):
    """A person (or service) that signs in with API tokens; ``admin`` users run the server."""

    __tablename__ = "shoal_user"  # "user" is a reserved word on PostgreSQL

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiTokenRow(Base):
    """An API token of a user: only its sha256 is stored; the token itself is shown once."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    # The public handle that lists show and revoke takes; the secret part never leaves creation.
    token_id: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("shoal_user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RoleAssignmentRow(Base):
    """A user's role in a workspace (a user may hold several there; they combine)."""

    __tablename__ = "role_assignment"
    __table_args__ = (UniqueConstraint("workspace_id", "user_id", "role", name="uq_role_assignment"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("shoal_user.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditRow(Base):
    """One audited request: a write, a secret read or a denied request. Names, not row ids, so a
    record outlives the user and the workspace it names."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_actor", "actor", "id"),
        Index("ix_audit_log_workspace", "workspace", "id"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255))
    workspace: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(1024))
    status: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    client: Mapped[str] = mapped_column(String(255), default="")
    detail: Mapped[str | None] = mapped_column(String(1024), nullable=True)


class StudioLoginRow(Base):
    """A studio login code (``kind`` "code": once, for minutes) or the browser session it became
    (``kind`` "session"). Only digests are kept: ``secret_digest`` of the code or session cookie,
    ``token_digest`` of the bearer token it came from (``api_token.digest`` for a user token), which
    every request signs in again, so a revoked token ends its sessions at once."""

    __tablename__ = "studio_login"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    secret_digest: Mapped[str] = mapped_column(String(64), unique=True)
    token_digest: Mapped[str] = mapped_column(String(64))
    principal: Mapped[str] = mapped_column(String(255))
    csrf_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CustomRoleRow(Base):
    """A role an admin defined from Azure-style actions and not-actions (``services/access/custom_roles.py``);
    assigned per workspace by its name, like the built-in roles."""

    __tablename__ = "custom_role"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(1024), default="")
    actions: Mapped[list] = mapped_column(JSON)
    not_actions: Mapped[list] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
