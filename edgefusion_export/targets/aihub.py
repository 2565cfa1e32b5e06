"""Qualcomm AI Hub (`qai-hub`): cloud compile jobs, with resumable job ids. Profiling reuses the client.

Every network call goes through a `qai_hub.Client`; tests pass a fake module whose calls are checked against
the installed client's signatures. Job ids are written to a ledger as soon as a job is submitted, so a re-run
after a failure or a time-out waits for the same jobs instead of submitting new ones.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import onnx

from ..errors import UserError, first_line
from ..files import sha256_file, write_text_atomic
from ..stages import StageResult
from .chipsets import Chipset

TOKEN_ENV = "QAI_HUB_API_TOKEN"
COMPILE_OPTIONS = "--target_runtime qnn_context_binary"
DEFAULT_TIMEOUT_S = 3600


@dataclass(frozen=True)
class AihubCompilation(StageResult):
    job_id: str
    url: str
    file: str
    device: str
    options: str

    def summary(self) -> str:
        return f"AI Hub job {self.job_id}"


def load_hub() -> ModuleType:
    import qai_hub

    return qai_hub


def make_client(hub: ModuleType) -> Any:
    """A client authenticated by QAI_HUB_API_TOKEN or the user's qai-hub configuration."""
    token = os.environ.get(TOKEN_ENV)
    if token:
        return hub.Client(config=hub.ClientConfig(api_token=token))
    config = Path(os.path.expanduser(os.environ.get("QAIHUB_CLIENT_INI", "~/.qai_hub/client.ini")))
    if not config.is_file():
        raise UserError(f"no Qualcomm AI Hub token: set {TOKEN_ENV} or run 'qai-hub configure --api_token TOKEN'")
    return hub.Client()


class JobLedger:
    """Submitted job ids by purpose, persisted at once (the resume point)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.jobs: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UserError(f"{path} is corrupt ({first_line(error)}); delete it to submit the AI Hub jobs again "
                            "(the ids of running jobs are then lost)")
        if not isinstance(self.jobs, dict) or not all(isinstance(v, str) for v in self.jobs.values()):
            raise UserError(f"{path} is not a job ledger; delete it to submit the AI Hub jobs again")

    def get(self, purpose: str) -> str | None:
        return self.jobs.get(purpose)

    def record(self, purpose: str, job_id: str) -> None:
        self.jobs[purpose] = job_id
        write_text_atomic(self.path, json.dumps(self.jobs, indent=2))

    def forget(self, purpose: str) -> None:
        self.jobs.pop(purpose, None)
        write_text_atomic(self.path, json.dumps(self.jobs, indent=2))


@contextmanager
def network(action: str) -> Iterator[None]:
    """Turn the client's own errors (network, authentication, server) into one-line user errors."""
    try:
        yield
    except UserError:
        raise
    except Exception as error:  # the client raises requests, protobuf and its own error types
        raise UserError(f"AI Hub {action} failed ({first_line(error)}); check the token and the network, then re-run "
                        "(submitted jobs are resumed)") from None


def run_job(client: Any, ledger: JobLedger, purpose: str, submit, timeout_s: int) -> Any:
    """Submit (or resume) a job, wait for it, and return it once it succeeded."""
    job_id = ledger.get(purpose)
    with network("job submission" if job_id is None else f"lookup of job {job_id}"):
        if job_id is None:
            job = submit()
            ledger.record(purpose, job.job_id)
        else:
            job = client.get_job(job_id)
    with network(f"wait for job {job.job_id}"):
        try:
            status = job.wait(timeout=timeout_s)
        except TimeoutError:  # the client's own time-out: the job still runs on AI Hub
            raise UserError(f"AI Hub job {job.job_id} did not finish in {timeout_s} s ({job.url}); "
                            "re-run to keep waiting") from None
    if status.failure:
        ledger.forget(purpose)
        raise UserError(f"AI Hub job {job.job_id} failed: {status.message or 'no message'} ({job.url}); "
                        "fix the model or options and re-run")
    return job


def upload_copy(model_path: Path, folder: Path) -> Path:
    """The model as one self-contained .onnx file (AI Hub takes single files up to 2 GB)."""
    model = onnx.load(str(model_path), load_external_data=True)
    if model.ByteSize() > 2**31 - 1:
        raise UserError(f"{model_path.name} is over 2 GB, AI Hub's single-file limit; use a W8A16 recipe")
    path = folder / f"upload-{model_path.name}"
    onnx.save(model, str(path))
    return path


def compile_on_aihub(hub: ModuleType, client: Any, model_path: Path, component: str, chipset: Chipset,
                     ledger: JobLedger, folder: Path, options: str = COMPILE_OPTIONS,
                     timeout_s: int = DEFAULT_TIMEOUT_S) -> AihubCompilation:
    """Compile one component for the chipset's AI Hub device with compile `options`; download the QNN context
    binary into `folder`."""
    digest = hashlib.sha256(sha256_file(model_path).encode() + options.encode()).hexdigest()[:16]
    purpose = f"compile/{component}/{chipset.name}/{digest}"
    upload = None

    def submit() -> Any:
        nonlocal upload
        upload = upload_copy(model_path, folder)
        return client.submit_compile_job(model=str(upload), device=hub.Device(chipset.aihub_device),
                                         name=f"edgefusion {component}", options=options)

    job = run_job(client, ledger, purpose, submit, timeout_s)
    if upload is not None:
        upload.unlink()
    target = folder / f"{component}.{chipset.name}.aihub.bin"
    with network(f"download of job {job.job_id}"):
        downloaded = job.download_target_model(str(target))  # may append the server's extension; None: no model
    if downloaded is None or not Path(downloaded).is_file():
        raise UserError(f"AI Hub job {job.job_id} produced no target model ({job.url}); re-run to retry the download")
    Path(downloaded).replace(target)
    return AihubCompilation(job.job_id, job.url, target.name, chipset.aihub_device, options)
