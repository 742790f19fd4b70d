"""The container setup (Dockerfile, .dockerignore, compose.yaml, the collector config), checked
against the code without a Docker engine.

Those files name modules, variables, ports, health names and files that live in the
code; these tests fail when one side changes and the other does not: a renamed
variable, a moved module, a port changed in one place only, a health check the CLI
would reject, a file the image build would not see, a collector pipeline naming a
component nobody defined. They read files and parse them with the project's own
parsers and validators; nothing is built, started or fetched.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, get_args
from urllib.parse import urlsplit

import botocore.configprovider
import botocore.credentials
import opentelemetry.environment_variables
import opentelemetry.sdk.environment_variables
import pytest
import yaml

from bedrock_emulator.__main__ import parse_args as parse_emulator_args
from bedrock_emulator.knowledge_base import ACTIVE_ID as EMULATED_ACTIVE_KNOWLEDGE_BASE
from dualnova.cli import health as health_cli
from dualnova.cli.chat import GATEWAY_VARIABLE
from dualnova.cli.main import build_parser
from gateway import config as gateway_config
from inference_service import config as inference_config
from inference_service.bedrock import open_session
from inference_service.bedrock.session import BedrockService

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
# The development launcher: in the repository, never in the image.
DEV_ONLY = "dualnova/dev/"

# Compose service names the README and the other services refer to.
EMULATOR, INFERENCE, GATEWAY, COLLECTOR, JAEGER = (
    "bedrock-emulator",
    "inference",
    "gateway",
    "otel-collector",
    "jaeger",
)
ANY_INTERFACE = "0.0.0.0"
LOOPBACK = "127.0.0.1"
JAEGER_UI_PORT = 16686
# Where the contrib image reads its configuration when no --config is given.
COLLECTOR_DEFAULT_CONFIG = "/etc/otelcol-contrib/config.yaml"

# Collector component types that exist in the pinned contrib image (0.158): a name
# outside these is a typo or a removed component (e.g. `logging`, gone since 0.111),
# and the collector would refuse to start.
COLLECTOR_TYPES = {
    "receivers": {"otlp"},
    "processors": {"batch", "memory_limiter"},
    "exporters": {"otlp_grpc", "otlp", "otlp_http", "otlphttp", "debug", "prometheus"},
}

# botocore clients the inference service builds: every Bedrock one (bedrock/session.py:
# runtime, control plane, Knowledge Base Retrieve and GetKnowledgeBase) and cloudwatch.py's.
BEDROCK_CLIENTS: tuple[str, ...] = get_args(BedrockService)
AWS_CLIENTS = (*BEDROCK_CLIENTS, "cloudwatch")


# --- reading the files ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def collector_config(services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    source, _ = collector_config_mount(services[COLLECTOR])
    return yaml.safe_load((REPO / source).read_text())


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def dockerfile_cmd(instructions: list[tuple[str, str]]) -> list[str]:
    commands = [args for keyword, args in final_stage(instructions) if keyword == "CMD"]
    assert commands, "the final stage has no CMD"
    command = json.loads(commands[-1])  # exec form: signals reach the program, not a shell
    assert isinstance(command, list) and all(isinstance(part, str) for part in command)
    return command


def copy_sources(instructions: list[tuple[str, str]]) -> list[str]:
    """Paths COPY takes from the build context (not from another stage)."""
    sources: list[str] = []
    for keyword, args in instructions:
        if keyword not in ("COPY", "ADD"):
            continue
        parts = shlex.split(args)
        if any(part.startswith("--from") for part in parts):
            continue
        paths = [part for part in parts if not part.startswith("--")]
        sources.extend(paths[:-1])
    return sources


def ours(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services that run this repository's image (they have a build section)."""
    return {name: service for name, service in services.items() if "build" in service}


def command_of(service: Mapping[str, Any], instructions: list[tuple[str, str]]) -> list[str]:
    """What the container runs: the service's command, else the image's CMD."""
    command = service.get("command")
    if command is None:
        return dockerfile_cmd(instructions)
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.partition("=")[::2] for item in raw)

    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else str(value)

    return {name: text(value) for name, value in raw.items()}


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def target_host_port(target: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a gRPC target such as dns:///inference:50051 or HOST:PORT."""
    scheme, sep, rest = target.partition(":")
    if sep and rest.startswith("//"):
        address = rest[2:].partition("/")[2]
        return (scheme, *host_port(address))
    return ("", *host_port(target))


def published_ports(service: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) for each entry of `ports`, short or long syntax."""
    published = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            published.append(
                (entry.get("host_ip", ""), int(entry["published"]), int(entry["target"]))
            )
            continue
        spec = str(entry).split("/")[0]
        parts = spec.rsplit(":", 2)
        assert len(parts) == 3, f"{entry!r}: publish with an explicit host IP"
        published.append((parts[0], int(parts[1]), int(parts[2])))
    return published


def duration_s(value: str) -> float:
    """A compose duration (Go syntax: 1m30s, 10s, 500ms) in seconds."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)", value)
    assert parts and "".join(a + b for a, b in parts) == value, f"not a duration: {value!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def collector_config_mount(service: Mapping[str, Any]) -> tuple[str, str]:
    """(source in the repo, path in the container) of the collector's config file."""
    for volume in service.get("volumes", []):
        source, target, *options = str(volume).split(":")
        if source.endswith((".yaml", ".yml")):
            assert options == ["ro"], f"{volume!r}: mount the configuration read-only"
            return source, target
    raise AssertionError(f"{COLLECTOR} mounts no configuration file")


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves `path` out, as Docker reads .dockerignore.

    The last pattern matching the path or one of its parent directories decides;
    `*` stays within one path element, `**` spans any number, `!` re-includes.
    """
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _dockerignore_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def files_under(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for child in path.rglob("*"):
        if child.is_file() and "__pycache__" not in child.parts:
            yield child


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def known_variables(service_name: str) -> set[str]:
    """Every variable the program of `service_name` (or a library it configures) reads."""
    otel = {
        value
        for module in (opentelemetry.environment_variables, opentelemetry.sdk.environment_variables)
        for name, value in vars(module).items()
        if name.startswith("OTEL_") and isinstance(value, str)
    }
    cli = {GATEWAY_VARIABLE}  # `dualnova chat` / `dualnova health` run in the same image
    if service_name == GATEWAY:
        return {flag.variable for flag in gateway_config.FLAGS} | otel | cli
    aws = {
        "AWS_REGION",  # inference_service.config reads it (boto3 itself reads AWS_DEFAULT_REGION)
        "AWS_EC2_METADATA_DISABLED",  # botocore.utils, for the instance metadata lookups
        "AWS_ENDPOINT_URL",
        botocore.credentials.EnvProvider.ACCESS_KEY,
        botocore.credentials.EnvProvider.SECRET_KEY,
        botocore.credentials.EnvProvider.EXPIRY_TIME,
        *botocore.credentials.EnvProvider.TOKENS,
        *(endpoint_variable(client) for client in AWS_CLIENTS),
    }
    for entry in botocore.configprovider.BOTOCORE_DEFAUT_SESSION_VARIABLES.values():
        names = entry[1]
        aws.update([names] if isinstance(names, str) else names or ())
    return {flag.variable for flag in inference_config.FLAGS} | aws | otel | cli


def endpoint_variable(client: str) -> str:
    """The service-specific endpoint variable boto3 reads for `client` (its service id)."""
    return f"AWS_ENDPOINT_URL_{client.replace('-', '_').upper()}"


def parse_health_check(service: Mapping[str, Any]) -> Any:
    """The service's health-check command, parsed by the `dualnova` CLI's own parser."""
    test = service["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] == "CMD", "exec form: no shell in the way"
    program, *argv = test[1:]
    assert program == "dualnova" and program in pyproject()["project"]["scripts"]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        pytest.fail(f"dualnova rejects the health check {test!r} (exit {exit_.code})")
    return args


# --- compose: programs and commands --------------------------------------------------------


def test_compose_defines_the_documented_services(services: dict[str, dict[str, Any]]) -> None:
    assert {EMULATOR, INFERENCE, GATEWAY, COLLECTOR, JAEGER} <= set(services)
    assert set(ours(services)) == {EMULATOR, INFERENCE, GATEWAY}
    for name, service in ours(services).items():
        build = service["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "")
        assert (REPO / context / dockerfile).is_file(), name


def test_every_program_is_a_module_the_image_installs(
    services: dict[str, dict[str, Any]], dockerfile: list[tuple[str, str]]
) -> None:
    expected = {EMULATOR: "bedrock_emulator", INFERENCE: "inference_service", GATEWAY: "gateway"}
    copied = {PurePosixPath(source).parts[0] for source in copy_sources(dockerfile)}
    for name, service in ours(services).items():
        command = command_of(service, dockerfile)
        assert command[:2] == ["python", "-m"], f"{name}: {command}"
        module = command[2]
        assert module == expected[name]
        assert (REPO / module.replace(".", "/") / "__main__.py").is_file(), module
        assert module.split(".")[0] in copied, f"the image does not contain {module}"


def test_the_image_runs_the_inference_service_by_default(
    dockerfile: list[tuple[str, str]],
) -> None:
    assert dockerfile_cmd(dockerfile) == ["python", "-m", "inference_service"]
    assert (REPO / "inference_service" / "__main__.py").is_file()


def test_the_emulator_listens_where_the_inference_service_and_its_probe_look(
    services: dict[str, dict[str, Any]], dockerfile: list[tuple[str, str]]
) -> None:
    args = parse_emulator_args(command_of(services[EMULATOR], dockerfile)[3:])
    assert args.host == ANY_INTERFACE  # other containers must reach it
    env = environment(services[INFERENCE])
    # Each Bedrock client its own variable: one left out would go to AWS with fake keys.
    for variable in (endpoint_variable(client) for client in BEDROCK_CLIENTS):
        assert variable in env, f"{INFERENCE} does not point {variable} at the emulator"
        url = urlsplit(env[variable])
        assert (url.scheme, url.hostname, url.port) == ("http", EMULATOR, args.port), variable
    probe = " ".join(services[EMULATOR]["healthcheck"]["test"])
    urls = re.findall(r"https?://[^\s'\"]+", probe)
    assert urls == [f"http://{LOOPBACK}:{args.port}/_emulator/health"]
    assert '"/_emulator/health"' in (REPO / "bedrock_emulator" / "server.py").read_text()


# --- compose: environment ------------------------------------------------------------------


@pytest.mark.parametrize("service_name", [INFERENCE, GATEWAY])
def test_every_variable_set_is_one_the_program_reads(
    services: dict[str, dict[str, Any]], service_name: str
) -> None:
    env = environment(services[service_name])
    assert env, f"{service_name} sets no environment"
    unknown = set(env) - known_variables(service_name)
    assert not unknown, f"{service_name} sets variables nothing reads: {sorted(unknown)}"


def test_the_environment_passes_the_services_own_validation(
    services: dict[str, dict[str, Any]],
) -> None:
    inference_config.load(environment(services[INFERENCE]))
    gateway_config.load(environment(services[GATEWAY]))


def test_the_inference_service_finds_the_emulator_and_the_credentials(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """boto3, as the service opens it, resolves every client to the emulator service."""
    env = environment(services[INFERENCE])
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    session = open_session(inference_config.load(env))
    assert session.get_credentials().access_key == env["AWS_ACCESS_KEY_ID"]
    emulator = env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"]
    assert {"bedrock-agent-runtime", "bedrock-agent"} <= set(BEDROCK_CLIENTS)
    for client_name in BEDROCK_CLIENTS:
        client = session.client(client_name)
        assert client.meta.endpoint_url == emulator, client_name


def test_the_inference_service_grounds_in_the_emulators_knowledge_base(
    services: dict[str, dict[str, Any]],
) -> None:
    """A grounding that names no knowledge base uses KBDUALNOVA, the one the emulator has ACTIVE."""
    settings = inference_config.load(environment(services[INFERENCE]))
    assert settings.knowledge_base_id == EMULATED_ACTIVE_KNOWLEDGE_BASE == "KBDUALNOVA"


def test_the_fake_credentials_say_how_to_use_real_bedrock() -> None:
    lines = COMPOSE_FILE.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("AWS_ACCESS_KEY_ID:"))
    comment = []
    while lines[at - 1 - len(comment)].strip().startswith("#"):
        comment.append(lines[at - 1 - len(comment)])
    text = " ".join(comment).lower()
    assert "remove" in text and "real" in text and ".aws" in text


# --- compose: addresses and ports ----------------------------------------------------------


def test_listen_addresses_targets_and_exposed_ports_agree(
    services: dict[str, dict[str, Any]], dockerfile: list[tuple[str, str]]
) -> None:
    inference = inference_config.load(environment(services[INFERENCE]))
    gateway = gateway_config.load(environment(services[GATEWAY]))
    inference_host, inference_port = host_port(inference.listen)
    gateway_host, gateway_port = host_port(gateway.listen)
    # Loopback inside a container is unreachable from the others.
    assert inference_host == ANY_INTERFACE and gateway_host == ANY_INTERFACE
    # dns:/// makes the gateway see every replica's address, which round-robin needs.
    assert target_host_port(gateway.inference_target) == ("dns", INFERENCE, inference_port)
    exposed = {
        int(port.split("/")[0])
        for keyword, args in final_stage(dockerfile)
        if keyword == "EXPOSE"
        for port in args.split()
    }
    assert {inference_port, gateway_port} <= exposed
    assert published_ports(services[GATEWAY]) == [(LOOPBACK, gateway_port, gateway_port)]


def test_only_the_gateway_and_jaeger_ui_are_published_and_only_on_loopback(
    services: dict[str, dict[str, Any]],
) -> None:
    published = {name: published_ports(s) for name, s in services.items() if s.get("ports")}
    assert set(published) == {GATEWAY, JAEGER}
    assert published[JAEGER] == [(LOOPBACK, JAEGER_UI_PORT, JAEGER_UI_PORT)]
    for name, service in services.items():
        assert "container_name" not in service, f"{name}: a fixed name prevents --scale"
        assert service.get("network_mode") != "host", name


def test_telemetry_goes_to_the_collector_on_its_grpc_receiver(
    services: dict[str, dict[str, Any]], collector_config: dict[str, Any]
) -> None:
    protocols = collector_config["receivers"]["otlp"]["protocols"]
    _, grpc_port = host_port(protocols["grpc"]["endpoint"])
    _, http_port = host_port(protocols["http"]["endpoint"])
    names = set()
    for service_name in (INFERENCE, GATEWAY):
        env = environment(services[service_name])
        protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        url = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert url.hostname == COLLECTOR and url.scheme == "http", service_name
        assert url.port == (grpc_port if protocol == "grpc" else http_port), service_name
        names.add(env["OTEL_SERVICE_NAME"])
        assert COLLECTOR in services[service_name]["depends_on"], service_name
    assert len(names) == 2, "each service needs its own name in the traces"


# --- compose: health checks and start order ------------------------------------------------


@pytest.mark.parametrize("service_name", [INFERENCE, GATEWAY])
def test_health_checks_are_valid_dualnova_health_calls_on_the_listen_port(
    services: dict[str, dict[str, Any]], service_name: str
) -> None:
    service = services[service_name]
    args = parse_health_check(service)
    assert args.command == "health" and args.run is health_cli.run
    assert args.service == "" and not args.all  # the whole server, as a readiness probe asks
    load = inference_config.load if service_name == INFERENCE else gateway_config.load
    _, listen_port = host_port(load(environment(service)).listen)
    assert host_port(args.addr) == (LOOPBACK, listen_port)
    # `dualnova health` may take its timeout to connect and again for the RPC.
    check = service["healthcheck"]
    assert duration_s(check["timeout"]) > 2 * args.timeout
    assert duration_s(check["interval"]) > 0 and int(check["retries"]) >= 1


def test_each_service_starts_after_what_it_calls_is_healthy(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], dependency
    assert services[INFERENCE]["depends_on"][EMULATOR]["condition"] == "service_healthy"
    assert services[GATEWAY]["depends_on"][INFERENCE]["condition"] == "service_healthy"


@pytest.mark.parametrize("service_name", [INFERENCE, GATEWAY])
def test_docker_waits_out_the_drain_before_killing(
    services: dict[str, dict[str, Any]], service_name: str
) -> None:
    """SIGTERM starts shutdown delay + grace; Docker's kill must come after both."""
    service = services[service_name]
    load = inference_config.load if service_name == INFERENCE else gateway_config.load
    settings = load(environment(service))
    stop_after = duration_s(service.get("stop_grace_period", "10s"))
    assert stop_after > settings.shutdown_delay_s + settings.shutdown_grace_s


# --- compose: collector and Jaeger ---------------------------------------------------------


def test_third_party_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name in (COLLECTOR, JAEGER):
        image = services[name]["image"]
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?", image), image
    assert services[COLLECTOR]["image"].startswith("otel/opentelemetry-collector-contrib:")
    assert services[JAEGER]["image"].startswith("jaegertracing/")


def test_the_collector_reads_the_mounted_config_from_the_repository(
    services: dict[str, dict[str, Any]],
) -> None:
    service = services[COLLECTOR]
    source, target = collector_config_mount(service)
    assert (REPO / source).is_file(), source
    command = service.get("command") or []
    configs = [part.split("=", 1)[1] for part in command if part.startswith("--config=")]
    assert (configs or [COLLECTOR_DEFAULT_CONFIG]) == [target]


def test_collector_pipelines_use_only_components_defined_in_the_config(
    collector_config: dict[str, Any],
) -> None:
    pipelines = collector_config["service"]["pipelines"]
    assert {"traces", "metrics"} <= set(pipelines)
    used: dict[str, set[str]] = {kind: set() for kind in COLLECTOR_TYPES}
    for pipeline_name, pipeline in pipelines.items():
        assert pipeline.get("receivers") and pipeline.get("exporters"), pipeline_name
        for kind in COLLECTOR_TYPES:
            for component in pipeline.get(kind, []):
                assert component in (collector_config.get(kind) or {}), (pipeline_name, component)
                used[kind].add(component)
    for kind, known in COLLECTOR_TYPES.items():
        defined = set(collector_config.get(kind) or {})
        assert defined == used[kind], f"{kind} defined but in no pipeline: {defined - used[kind]}"
        for component in defined:
            assert component.split("/")[0] in known, f"unknown {kind[:-1]} type: {component}"


def test_receivers_listen_beyond_the_collector_container(
    collector_config: dict[str, Any],
) -> None:
    for protocol in collector_config["receivers"]["otlp"]["protocols"].values():
        assert host_port(protocol["endpoint"])[0] == ANY_INTERFACE


def test_traces_are_exported_to_jaeger_over_otlp(
    services: dict[str, dict[str, Any]], collector_config: dict[str, Any]
) -> None:
    exporters = collector_config["exporters"]
    for name in collector_config["service"]["pipelines"]["traces"]["exporters"]:
        if name.split("/")[0] in ("otlp_grpc", "otlp"):
            assert host_port(exporters[name]["endpoint"]) == (JAEGER, 4317)
            assert exporters[name]["tls"]["insecure"] is True  # Jaeger serves plain gRPC here
            break
    else:
        pytest.fail("the traces pipeline does not export over OTLP gRPC")
    assert JAEGER in services[COLLECTOR]["depends_on"]


# --- Dockerfile and build context ----------------------------------------------------------


def test_copy_sources_exist_and_reach_the_build_context(
    dockerfile: list[tuple[str, str]],
) -> None:
    patterns = dockerignore_patterns()
    sources = copy_sources(dockerfile)
    assert sources
    for source in sources:
        path = REPO / source
        assert path.exists(), f"COPY {source}: no such file in the repository"
        for file in files_under(path):
            if file.suffix in (".py", ".toml", ".md"):
                relative = file.relative_to(REPO).as_posix()
                if relative.startswith(DEV_ONLY):
                    continue  # left out on purpose: the next tests
                assert not dockerignore_excludes(relative, patterns), relative


def test_the_image_holds_no_development_launcher() -> None:
    patterns = dockerignore_patterns()
    launcher = sorted(p.relative_to(REPO).as_posix() for p in (REPO / DEV_ONLY).glob("*.py"))
    assert "dualnova/dev/stack.py" in launcher and "dualnova/dev/demo.py" in launcher
    for path in launcher:
        assert dockerignore_excludes(path, patterns), path


def test_nothing_shipped_imports_the_launcher_at_import_time() -> None:
    """Shipped modules may reach dualnova.dev only inside a function (dualnova up says why)."""
    offenders = []
    for package in ("dualnova", "inference_service", "gateway", "bedrock_emulator"):
        for file in (REPO / package).rglob("*.py"):
            relative = file.relative_to(REPO).as_posix()
            if relative.startswith(DEV_ONLY):
                continue
            for node in ast.parse(file.read_text()).body:  # module level only
                names = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                if any(name.startswith("dualnova.dev") for name in names):
                    offenders.append(relative)
    assert offenders == []


def test_the_image_copies_everything_the_wheel_is_built_from(
    dockerfile: list[tuple[str, str]],
) -> None:
    project = pyproject()
    copied = {PurePosixPath(source).parts[0] for source in copy_sources(dockerfile)}
    assert {"pyproject.toml", project["project"]["readme"]} <= copied
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    top_level = {
        path.parent.name
        for path in REPO.glob("*/__init__.py")
        if any(re.fullmatch(pattern.replace("*", ".*"), path.parent.name) for pattern in include)
    }
    assert top_level and top_level <= copied, f"not copied: {top_level - copied}"


def test_the_build_context_leaves_out_local_state() -> None:
    patterns = dockerignore_patterns()
    for path in (".git/config", ".venv/bin/python", "node_modules/x", "tests/test_cli.py"):
        assert dockerignore_excludes(path, patterns), path
    assert not dockerignore_excludes("dualnova/cli/main.py", patterns)
    assert dockerignore_excludes("dualnova/__pycache__/settings.cpython-311.pyc", patterns)


def test_the_runtime_stage_is_slim_non_root_and_without_dev_extras(
    dockerfile: list[tuple[str, str]],
) -> None:
    args = {}
    for keyword, rest in dockerfile:
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
    stage = final_stage(dockerfile)
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], stage[0][1].split()[0])
    assert base == "python:3.11-slim"
    users = [rest for keyword, rest in stage if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    runs = " ".join(rest for keyword, rest in dockerfile if keyword == "RUN")
    assert "pip install" in runs and "[dev]" not in runs and "optional-dependencies" not in runs
    # The runtime stage installs built wheels; it neither copies sources nor builds anything.
    assert not [rest for keyword, rest in stage if keyword in ("COPY", "ADD")]
    assert "from=wheels" in " ".join(rest for keyword, rest in stage if keyword == "RUN")
    # Listen addresses come from the environment (compose), not the image.
    env = " ".join(rest for keyword, rest in dockerfile if keyword == "ENV")
    assert "INFERENCE_LISTEN" not in env and "GATEWAY_LISTEN" not in env


def test_the_dockerfile_parser_reads_continuations_and_comments() -> None:
    """The helpers above are what every Dockerfile check stands on."""
    parsed = dockerfile_instructions(
        '# syntax=docker/dockerfile:1\nFROM a AS b\nRUN one \\\n  # note\n  two\nCMD ["x"]\n'
    )
    assert parsed == [("FROM", "a AS b"), ("RUN", "one  two"), ("CMD", '["x"]')]
    assert dockerignore_excludes("README.md", ["*"])
    assert not dockerignore_excludes("README.md", ["*", "!README.md"])
    assert dockerignore_excludes("a/b/c.pyc", ["**/*.pyc"])
    assert duration_s("1m30s") == 90 and duration_s("500ms") == 0.5


def test_the_image_builds_its_dependencies_from_the_pinned_constraints(
    dockerfile: list[tuple[str, str]],
) -> None:
    runs = " ".join(rest for keyword, rest in dockerfile if keyword == "RUN")
    assert "--constraint constraints.txt" in runs
    assert "constraints.txt" in copy_sources(dockerfile)
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    for requirement in pyproject()["project"]["dependencies"]:
        name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
        assert re.sub(r"[-_.]+", "-", name).lower() in pins, f"{name} is not pinned"
