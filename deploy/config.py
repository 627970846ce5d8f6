"""Configuration of the Ray Serve application: one frozen, validated object (unknown keys are refused)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ServeConfig(BaseModel):
    """What ``deploy.app:build_app`` reads from ``deploy/serve.yaml`` (``args:``) or ``holmes serve``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    registry_dir: str | None = Field(None, description="model registry folder (models.registry); None: members passed in Python")
    registry_version: str | None = Field(None, description="registry version to load (vNNNN); None: the latest")
    plan_path: str | None = Field(None, description="plan JSON written by `holmes compose`; None: every member alone plus all together")
    members: list[str] | None = Field(None, description="members to deploy when there is no plan")
    member_num_cpus: float | None = Field(None, gt=0, le=0.5, description="CPUs reserved per member replica; None: share "
                                          "cluster_cpus - ingress_num_cpus among the members, at most 0.25 each")
    cluster_cpus: float = Field(2.0, gt=0, description="logical CPUs of the Ray cluster the app must fit in")
    ingress_num_cpus: float = Field(0.25, gt=0, le=0.5, description="CPUs reserved by the ingress replica")
    torch_threads: int = Field(1, ge=1, le=4, description="torch intra-op threads per replica")
    max_batch_size: int = Field(8, ge=1, le=64, description="requests merged into one member call by @serve.batch")
    batch_wait_timeout_s: float = Field(0.0, ge=0, le=1, description="how long @serve.batch waits to fill a batch")
    max_request_windows: int = Field(256, ge=1, le=4096, description="largest batch of windows one request may carry")
    default_deadline_ms: float = Field(1000.0, gt=0, description="deadline when a request names none")
    window_s: float | None = Field(None, gt=0, description="required window length (s) at 250 Hz; None: any length")
    verdict_floor: str = Field("auto", description="weakest plan row a verdict may get: a row name, or 'auto' (the most "
                               "accurate row on nested CV)")

    def member_cpus(self, n_members: int) -> float:
        """CPU reservation per member replica: every replica of the app must be schedulable at once
        (Ray only reserves logical CPUs; the replicas still share the real cores)."""
        if self.member_num_cpus is not None:
            return self.member_num_cpus
        free = max(self.cluster_cpus - self.ingress_num_cpus, 0.05)
        return round(min(0.25, 0.95 * free / max(n_members, 1)), 4)
