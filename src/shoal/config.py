"""Settings, read once at the edges (CLI entry, ``create_app``, ``MLClient()``) and passed down.

Environment variables use the ``SHOAL_`` prefix: ``SHOAL_HOME``, ``SHOAL_DATABASE_URL``,
``SHOAL_ARTIFACT_ROOT``, ``SHOAL_SERVER_URL``, ``SHOAL_TOKEN``, ``SHOAL_WORKSPACE``,
``SHOAL_LOCAL_DATASTORE_ROOTS``, ``SHOAL_UPLOAD_SESSION_TTL``, ``SHOAL_TEMP_FILE_MAX_AGE``,
``SHOAL_CLEANUP_INTERVAL``; job isolation: ``SHOAL_JOB_ISOLATION`` (off | auto | required),
``SHOAL_JOB_USER``, ``SHOAL_JOB_READ_PATHS``, ``SHOAL_JOB_NETWORK`` (host | server); for several servers on one database
``SHOAL_PUBLIC_URL``, ``SHOAL_SERVER_ID``, ``SHOAL_SERVER_LEASE_SECONDS``; compute clusters on Ray:
``SHOAL_RAY_ADDRESS``, ``SHOAL_ADVERTISE_URL``; team mode:
``SHOAL_TEAM_MODE``, ``SHOAL_BODY_TIMEOUT``, ``SHOAL_AUDIT_RETENTION_DAYS``; SQLite:
``SHOAL_DB_BUSY_TIMEOUT``; compute instances: ``SHOAL_DEVBOX_TICK_SECONDS``,
``SHOAL_DEVBOX_START_TIMEOUT``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ShoalSettings(BaseSettings):
    # An empty variable is an unset one: `SHOAL_HOME=` (a shell variable that was never set) must
    # not make the current folder the home, where a server would then start and write its keys.
    model_config = SettingsConfigDict(env_prefix="SHOAL_", extra="ignore", env_ignore_empty=True)

    home: Path = Field(default_factory=lambda: Path.home() / ".shoal")
    database_url: str | None = None
    artifact_root: str | None = None
    server_url: str | None = None
    token: str | None = None
    workspace: str = "default"
    host: str = "127.0.0.1"
    port: int = 0
    # Seconds without a runner heartbeat before a job is NotResponding (twice that: Failed).
    heartbeat_timeout: float = 30.0
    # Several servers on one database (docs/deployment.md): the URL runners and jobs call back on
    # (a load balancer in front of them all; default: this server's own), this server's id in
    # the database (default: host, pid and a random part) and how long its lease lasts without a
    # renewal before another server takes over its jobs.
    public_url: str | None = None
    server_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    server_lease_seconds: float = Field(default=15.0, ge=1.0)
    # The address online endpoints' scoring instances listen on, and that the other servers'
    # routers reach them at (several servers on several hosts: this host's private address).
    endpoint_instance_host: str = "127.0.0.1"
    # Compute clusters on Ray (docs/compute-ray.md): the cluster's address (``ray://head:10001``
    # or ``head:6379``; unset: every job runs on this machine) and the URL runners on its nodes
    # call back on (default: the public URL, else this server's own, which nodes must reach).
    ray_address: str | None = None
    advertise_url: str | None = None
    # Folders local datastores may point into, os.pathsep-separated; by default
    # $SHOAL_HOME/local-datastores (storage/local_roots.py says what is refused).
    local_datastore_roots: str | None = None
    # Seconds an unfinished upload session lives; then it expires and its staging folder goes.
    upload_session_ttl: float = 24 * 3600.0
    # Temporary files of writes that crashed: removed once not written for this many seconds.
    temp_file_max_age: float = 3600.0
    # How often the server sweeps those leftovers (also once at start).
    cleanup_interval: float = 600.0
    # How often the server looks for due schedules, and how late a fire time may be (the server
    # was down) and still start its job; a later one is skipped, not made up.
    schedule_tick_seconds: float = 1.0
    schedule_misfire_grace: float = 60.0
    # Job code isolation (shoal.compute.sandbox): off | auto (where bwrap works) | required.
    job_isolation: str = "auto"
    # When the server runs as root, job code runs as this user (name, uid or uid:gid; default nobody).
    job_user: str | None = None
    # Extra host folders jobs may read (os.pathsep-separated), e.g. a shared dataset folder.
    job_read_paths: str | None = None
    # What job code reaches on the network: host (the host's network) | server (the Shoal
    # server only, in a namespace of the job's own: compute/job_network.py).
    job_network: str = "host"
    # The Java that Spark jobs run on (JAVA_HOME); default: JAVA_HOME, /usr/lib/jvm/default-java, `java` on PATH.
    java_home: str | None = None
    # Team mode (see ``is_team_mode``): true, false, or unset to decide from the bind address.
    team_mode: bool | None = None
    # Days the audit log keeps its records.
    audit_retention_days: float = 365.0
    # Seconds a request body may stall (no bytes arriving) before the server answers 408.
    body_timeout: float = 60.0
    # SQLite: seconds a writer waits for another's lock before the request answers 503.
    db_busy_timeout: float = 30.0
    # Compute instances' dev boxes: how often the server checks their JupyterLab (gone, idle),
    # and how long a start may wait for JupyterLab to answer.
    devbox_tick_seconds: float = Field(default=5.0, gt=0)
    devbox_start_timeout: float = Field(default=120.0, gt=0)

    def is_team_mode(self) -> bool:
        """A server others reach: SHOAL_TEAM_MODE=1, or bound to an address other than loopback.
        In team mode the API's documentation and version details need a token too."""
        if self.team_mode is not None:
            return self.team_mode
        return self.host not in ("127.0.0.1", "localhost", "::1")

    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_home() / 'shoal.db'}"

    def resolved_artifact_root(self) -> str:
        return self.artifact_root or str(self.resolved_home() / "artifacts")

    @property
    def token_file(self) -> Path:
        return self.resolved_home() / "token"

    @property
    def server_file(self) -> Path:
        return self.resolved_home() / "server.json"

    @property
    def secret_key_file(self) -> Path:
        return self.resolved_home() / "secret.key"


def load_settings(**overrides: object) -> ShoalSettings:
    clean = {k: v for k, v in overrides.items() if v is not None}
    return ShoalSettings(**clean)  # type: ignore[arg-type]
