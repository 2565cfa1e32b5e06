"""The one allowed fake: Qualcomm AI Hub's network boundary.

Every call is bound against the installed `qai_hub` client's own signature first, so a call the real client
would reject fails here too; statuses, devices and configs are the real `qai_hub` classes.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import qai_hub
from qai_hub.client import CompileJob, InferenceJob

State = qai_hub.JobStatus.State


def check_call(real, *args, **kwargs) -> None:
    """TypeError when `real` (an unbound method: pass self first) would not accept these arguments."""
    inspect.signature(real).bind(*args, **kwargs)


class FakeJob:
    def __init__(self, hub: "FakeHub", job_id: str, outcome: str) -> None:
        self.hub, self.job_id, self.outcome = hub, job_id, outcome
        self.url = f"https://workbench.aihub.qualcomm.com/jobs/{job_id}/"

    def wait(self, *args, **kwargs) -> qai_hub.JobStatus:
        check_call(CompileJob.wait, self, *args, **kwargs)
        outcome = self.hub.outcomes.get(self.job_id, self.outcome)
        if outcome == "failed":
            return qai_hub.JobStatus(State.FAILED, "Compilation failed: op GroupNorm is not supported")
        if outcome == "running":
            return qai_hub.JobStatus(State.OPTIMIZING_MODEL)
        return qai_hub.JobStatus(State.SUCCESS)

    def download_target_model(self, *args, **kwargs) -> str:
        check_call(CompileJob.download_target_model, self, *args, **kwargs)
        filename = kwargs.get("filename", args[0] if args else None)
        Path(filename).write_bytes(b"QNN context binary from " + self.job_id.encode())
        return filename


    def download_profile(self, *args, **kwargs) -> dict:
        check_call(InferenceJob.download_profile, self, *args, **kwargs)
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
        self.profile_payloads: dict[str, dict] = {}
        self.payloads_by_component: dict[str, dict] = {}

    def payload_for(self, job_name: str) -> dict:
        return self.payloads_by_component[job_name.rsplit(" ", 1)[-1]]

    def Client(self, *args, **kwargs) -> FakeClient:  # noqa: N802 (the module attribute is a class)
        return FakeClient(self, *args, **kwargs)
