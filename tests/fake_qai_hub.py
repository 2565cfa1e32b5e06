"""The one allowed fake: Qualcomm AI Hub's network boundary.

Every call is bound against the installed `qai_hub` client's own signature first, so a call the real client
would reject fails here too; statuses, devices and configs are the real `qai_hub` classes. Jobs are the real
`CompileJob` with only the network primitives replaced (`get_status`, `get_target_model`), so the installed
client's own `wait` (which raises TimeoutError on a client-side time-out) and `download_target_model` (None for a
failed job; the server's file extension appended to the name) run as they would against the service.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import qai_hub
from qai_hub.client import CompileJob, InferenceJob, Model

State = qai_hub.JobStatus.State
SERVER_EXTENSION = ".bin"  # what AI Hub names a QNN context binary; Model.download appends it when missing


def check_call(real, *args, **kwargs) -> None:
    """TypeError when `real` (an unbound method: pass self first) would not accept these arguments."""
    inspect.signature(real).bind(*args, **kwargs)


class FakeTargetModel:
    def __init__(self, job: "FakeJob") -> None:
        self.job = job

    def download(self, *args, **kwargs) -> str:
        check_call(Model.download, self, *args, **kwargs)
        filename = str(kwargs.get("filename", args[0] if args else None))
        if not filename.endswith(SERVER_EXTENSION):
            filename += SERVER_EXTENSION
        Path(filename).write_bytes(b"QNN context binary from " + self.job.job_id.encode())
        return filename


class FakeJob(CompileJob):
    """The installed client's CompileJob over a scripted outcome: success, failed or running (never finishes)."""

    verbose = False
    url = property(lambda self: f"https://workbench.aihub.qualcomm.com/jobs/{self.job_id}/")

    def __init__(self, hub: "FakeHub", job_id: str, outcome: str) -> None:  # no super(): it would call the service
        self.hub, self.job_id, self.outcome = hub, job_id, outcome

    def get_status(self) -> qai_hub.JobStatus:
        outcome = self.hub.outcomes.get(self.job_id, self.outcome)
        if outcome == "failed":
            return qai_hub.JobStatus(State.FAILED, "Compilation failed: op GroupNorm is not supported")
        if outcome == "running":
            return qai_hub.JobStatus(State.OPTIMIZING_MODEL)
        return qai_hub.JobStatus(State.SUCCESS)

    def get_target_model(self) -> FakeTargetModel | None:
        return FakeTargetModel(self) if self.get_status().success and not self.hub.target_models_missing else None

    def download_profile(self, *args, **kwargs) -> dict:
        check_call(InferenceJob.download_profile, self, *args, **kwargs)
        if self.hub.network_down:
            raise ConnectionError("Max retries exceeded with url: /api/v1/jobs/ (Failed to establish a new connection)")
        return self.hub.profile_payloads[self.job_id]


class FakeClient:
    def __init__(self, hub: "FakeHub", *args, **kwargs) -> None:
        check_call(qai_hub.Client.__init__, self, *args, **kwargs)
        self.hub = hub

    def submit_compile_job(self, *args, **kwargs) -> FakeJob:
        check_call(qai_hub.Client.submit_compile_job, self, *args, **kwargs)
        bound = inspect.signature(qai_hub.Client.submit_compile_job).bind(self, *args, **kwargs).arguments
        assert Path(bound["model"]).is_file() and str(bound["model"]).endswith(".onnx")
        assert isinstance(bound["device"], qai_hub.Device)
        if self.hub.network_down:
            raise ConnectionError("Max retries exceeded with url: /api/v1/jobs/ (Failed to establish a new connection)")
        job = FakeJob(self.hub, f"j{len(self.hub.jobs) + 1:07d}", self.hub.next_outcome)
        self.hub.jobs[job.job_id] = job
        self.hub.submitted.append(bound)
        return job

    def submit_profile_job(self, *args, **kwargs) -> FakeJob:
        check_call(qai_hub.Client.submit_profile_job, self, *args, **kwargs)
        bound = inspect.signature(qai_hub.Client.submit_profile_job).bind(self, *args, **kwargs).arguments
        assert Path(bound["model"]).is_file() and isinstance(bound["device"], qai_hub.Device)
        job = FakeJob(self.hub, f"p{len(self.hub.jobs) + 1:07d}", self.hub.next_outcome)
        self.hub.jobs[job.job_id] = job
        self.hub.submitted.append(bound)
        self.hub.profile_payloads[job.job_id] = self.hub.payload_for(bound["name"])
        return job

    def get_job(self, *args, **kwargs) -> FakeJob:
        check_call(qai_hub.Client.get_job, self, *args, **kwargs)
        job_id = kwargs.get("job_id", args[0] if args else None)
        self.hub.looked_up.append(job_id)
        return self.hub.jobs[job_id]


class FakeHub:
    """Stands in for the `qai_hub` module."""

    ClientConfig = qai_hub.ClientConfig
    Device = qai_hub.Device
    JobStatus = qai_hub.JobStatus

    def __init__(self) -> None:
        self.jobs: dict[str, FakeJob] = {}
        self.outcomes: dict[str, str] = {}
        self.submitted: list[dict] = []
        self.looked_up: list[str] = []
        self.next_outcome = "success"
        self.network_down = False
        self.target_models_missing = False  # a finished job whose target model the service does not return
        self.profile_payloads: dict[str, dict] = {}
        self.payloads_by_component: dict[str, dict] = {}

    def install(self, monkeypatch) -> "FakeHub":
        """Be the `qai_hub` module the project loads; the real client's polling sleeps take no time."""
        from types import SimpleNamespace

        from edgefusion_export.targets import aihub

        monkeypatch.setattr(aihub, "load_hub", lambda: self)
        monkeypatch.setattr(qai_hub.client, "time", SimpleNamespace(sleep=lambda seconds: None))
        return self

    def payload_for(self, job_name: str) -> dict:
        return self.payloads_by_component[job_name.rsplit(" ", 1)[-1]]

    def Client(self, *args, **kwargs) -> FakeClient:  # noqa: N802 (the module attribute is a class)
        return FakeClient(self, *args, **kwargs)
