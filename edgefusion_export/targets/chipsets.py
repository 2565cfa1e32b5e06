"""Snapdragon chipset profiles: one validated JSON file each in the repository's profiles/ folder."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jsonschema

from ..errors import UserError, first_line
from ..runtime.sessions import HtpTarget

SCHEMA = Path(__file__).with_name("chipset.schema.json")


def profiles_dir() -> Path:
    """EDGEFUSION_PROFILES, else the profiles shipped with the package (the repository's profiles/ folder)."""
    if os.environ.get("EDGEFUSION_PROFILES"):
        return Path(os.environ["EDGEFUSION_PROFILES"])
    return Path(str(resources.files("edgefusion_export.profiles")))


@dataclass(frozen=True)
class Chipset:
    name: str
    marketing_name: str
    soc: str
    hexagon_arch: str
    qnn_soc_model: int
    aihub_device: str
    npu_int8_tops: float
    memory_bandwidth_gbps: float
    vtcm_mb: float
    htp_clock_mhz: float
    example_phones: list[str] = field(default_factory=list)
    default: bool = False
    estimate: dict[str, dict] = field(default_factory=dict)  # precision -> the latency estimate's fitted constants

    def cache_identity(self) -> dict[str, str | int]:
        """What a compile for this chipset reads (the estimate's constants and the marketing figures are not)."""
        return {"name": self.name, "soc": self.soc, "hexagon_arch": self.hexagon_arch,
                "qnn_soc_model": self.qnn_soc_model, "aihub_device": self.aihub_device}

    @property
    def htp_arch_number(self) -> int:
        return int(self.hexagon_arch.lstrip("v"))

    @property
    def htp_target(self) -> HtpTarget:
        return HtpTarget(self.name, self.htp_arch_number, self.qnn_soc_model)


@lru_cache(maxsize=None)
def load_chipsets(folder: Path | None = None) -> dict[str, Chipset]:
    folder = folder or profiles_dir()
    if not SCHEMA.is_file():
        raise UserError(f"the chipset profile schema {SCHEMA} is missing; reinstall edgefusion-export")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    chipsets = {}
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            jsonschema.validate(data, schema)
        except (json.JSONDecodeError, jsonschema.ValidationError) as error:
            message = first_line(error)
            raise UserError(f"chipset profile {path} is invalid ({message}); fix it or remove it")
        chipsets[data["name"]] = Chipset(**data)
    if not chipsets:
        raise UserError(f"no chipset profiles in {folder}; set EDGEFUSION_PROFILES to the repository's profiles/ folder")
    return chipsets


def chipset(name: str | None) -> Chipset:
    """The named profile, or the default one."""
    chipsets = load_chipsets()
    if name is None:
        return next((c for c in chipsets.values() if c.default), next(iter(chipsets.values())))
    if name not in chipsets:
        raise UserError(f"unknown chipset {name!r}; choose one of: {', '.join(chipsets)} (see 'edgefusion-export targets')")
    return chipsets[name]
