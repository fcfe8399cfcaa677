"""docker-compose.yml, the README and the settings classes must agree with each other.

There is no Docker engine here: the schema is checked by check-jsonschema in CI, and this
test checks what a schema can't: references between services, ports and variables.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic_settings import BaseSettings

from agent.settings import AgentSettings
from dispatcher.settings import DispatcherSettings
from inference.settings import Settings as InferenceSettings
from tokens.settings import Settings as TokenSettings

from .compose_helpers import ROOT, readme_table_vars, service_ports

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
VAR_REF = re.compile(r"\$\{([A-Z0-9_]+)(?:[:?-][^}]*)?\}")
# Variables read by third-party images (livekit-server, vLLM, Hugging Face), not by our code.
EXTERNAL_VARS = {"LIVEKIT_KEYS", "HF_TOKEN"}


def env_names(settings_cls: type[BaseSettings]) -> set[str]:
    """Environment variable names a pydantic-settings class reads."""
    prefix = str(settings_cls.model_config.get("env_prefix", "")).upper()
    names: set[str] = set()
    for name, field in settings_cls.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        if isinstance(alias, str):
            names.add(alias.upper())
        elif choices:
            names.update(str(c).upper() for c in choices)
        else:
            names.add(prefix + name.upper())
    return names


PROCESS_SETTINGS: dict[str, type[BaseSettings]] = {
    "agent": AgentSettings,
    "dispatcher": DispatcherSettings,
    "inference": InferenceSettings,
    "tokens": TokenSettings,
}


def test_depends_on_targets_exist() -> None:
    for name, service in SERVICES.items():
        for dep in service.get("depends_on", {}) or {}:
            assert dep in SERVICES, f"{name} depends on unknown service {dep}"


def test_urls_point_at_services_and_ports_they_listen_on() -> None:
    checked = 0
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if not isinstance(value, str) or "://" not in value or "${" in value:
                continue
            url = urlsplit(value)
            if url.hostname not in SERVICES:
                continue
            target = SERVICES[url.hostname]
            assert url.port in service_ports(target), (
                f"{name}.{key}={value}: {url.hostname} does not expose port {url.port}"
            )
            assert url.hostname in (service.get("depends_on") or {}), (
                f"{name} uses {url.hostname} ({key}) without depends_on"
            )
            checked += 1
    assert checked >= 4


def test_commands_listen_on_the_ports_they_expose() -> None:
    for name, service in SERVICES.items():
        command = service.get("command") or []
        joined = " ".join(command) if isinstance(command, list) else str(command)
        match = re.search(r"--port[= ](\d+)", joined)
        if match:
            assert int(match.group(1)) in service_ports(service), name


@pytest.mark.parametrize("service", sorted(PROCESS_SETTINGS))
def test_service_environment_is_read_by_its_process(service: str) -> None:
    known = env_names(PROCESS_SETTINGS[service]) | EXTERNAL_VARS
    env = SERVICES[service].get("environment") or {}
    unknown = sorted(set(env) - known)
    assert not unknown, f"{service}: environment variables its settings never read: {unknown}"


def test_every_variable_is_documented() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    referenced = set(VAR_REF.findall(text))
    documented = readme_table_vars()
    example = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert referenced - documented == set(), "compose variables missing from README table"
    assert referenced - example == set(), "compose variables missing from .env.example"


def test_every_setting_is_documented() -> None:
    documented = readme_table_vars()
    for service, cls in PROCESS_SETTINGS.items():
        missing = sorted(env_names(cls) - documented - {"AGENT_NAME"})
        assert not missing, f"{service} settings missing from the README table: {missing}"


def test_livekit_image_matches_the_pinned_server() -> None:
    script = (ROOT / "scripts" / "ensure-livekit-server.sh").read_text()
    pinned = re.search(r"LIVEKIT_SERVER_VERSION:-([0-9.]+)", script)
    assert pinned
    assert SERVICES["livekit"]["image"].endswith(f":v{pinned.group(1)}")
    for volume in SERVICES["livekit"].get("volumes", []):
        assert (ROOT / volume.split(":")[0]).exists(), volume


def test_gpu_services_reserve_a_gpu() -> None:
    for name in ("inference", "vllm"):
        devices = SERVICES[name]["deploy"]["resources"]["reservations"]["devices"]
        assert any("gpu" in d.get("capabilities", []) for d in devices), name
