"""The Kubernetes manifests (deploy/kubernetes/), checked against the code without a cluster.

The base's resource list and ConfigMap generators are read from its kustomization.yaml;
every manifest is validated against the Kubernetes schema bundled with kubernetes-validate
(strict: unknown fields are errors; no network). The rest ties the manifests to the code:
probe names against the names the servers register, ports and variables against the
settings each service declares (and its own validation), the termination grace period
against the drain, the selectors against the pod labels. Where kubectl is installed, its
built-in kustomize also renders the example overlay, which is validated the same way.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml
from processes import SERVICE_DEFAULTS
from test_containers import known_variables

from dualnova.cli import health as health_cli
from dualnova.cli.main import build_parser
from dualnova.dev.stack import ServiceHandle, free_port
from gateway import config as gateway_config
from gateway.health import GatewayHealth
from inference_service import config as inference_config
from inference_service.health import InferenceHealth

REPO = Path(__file__).resolve().parent.parent
KUBE = REPO / "deploy" / "kubernetes"
BASE = KUBE / "base"
OVERLAY = KUBE / "overlays" / "example"
# The Kubernetes version whose schema the manifests must satisfy (bundled with the package).
K8S_VERSION = "1.33.0"
DOCKER_UID = 10001

INFERENCE, GATEWAY = "dualnova-inference", "dualnova-gateway"
CONFIG: dict[str, Any] = {INFERENCE: inference_config, GATEWAY: gateway_config}
# The key known_variables() (test_containers) knows each program by.
PROGRAM = {INFERENCE: "inference", GATEWAY: "gateway"}
MODULE = {INFERENCE: "inference_service", GATEWAY: "gateway"}


# --- reading the files ---------------------------------------------------------------------


def load_kustomization(directory: Path) -> dict[str, Any]:
    data = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert data["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert data["kind"] == "Kustomization"
    return data


def base_documents() -> list[tuple[str, dict[str, Any]]]:
    """(file, manifest) for every resource the base's kustomization lists, in order."""
    documents = []
    for resource in load_kustomization(BASE)["resources"]:
        path = BASE / resource
        assert path.is_file(), f"kustomization.yaml lists {resource}, which does not exist"
        for document in yaml.safe_load_all(path.read_text()):
            assert isinstance(document, dict), f"{resource}: not a mapping"
            documents.append((resource, document))
    return documents


DOCUMENTS = base_documents()


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in DOCUMENTS if doc["kind"] == kind}


def deployment(name: str) -> dict[str, Any]:
    return of_kind("Deployment")[name]


def pod_spec(name: str) -> dict[str, Any]:
    return deployment(name)["spec"]["template"]["spec"]


def container(name: str) -> dict[str, Any]:
    (only,) = pod_spec(name)["containers"]
    return only


def config_generators(directory: Path) -> dict[str, dict[str, Any]]:
    """A kustomization's configMapGenerator entries by name."""
    generators = load_kustomization(directory).get("configMapGenerator", [])
    return {generator["name"]: generator for generator in generators}


def literals(generator: Mapping[str, Any]) -> dict[str, str]:
    return dict(literal.split("=", 1) for literal in generator.get("literals", []))


def config_maps(*, overlay: bool = False) -> dict[str, dict[str, str]]:
    """ConfigMap name -> data, as the base generates them (with the overlay's merged in)."""
    maps = {name: literals(generator) for name, generator in config_generators(BASE).items()}
    if overlay:
        for name, generator in config_generators(OVERLAY).items():
            # merge: the base's ConfigMap with the overlay's keys; anything else would make a
            # second ConfigMap, or drop what the base holds.
            assert generator.get("behavior") == "merge" and name in maps, name
            maps[name].update(literals(generator))
    return maps


def env_names(name: str) -> list[str]:
    """Every variable the container's env sets, whatever its source."""
    return [entry["name"] for entry in container(name).get("env", [])]


def env_of(name: str, maps: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, str]:
    """The container's environment: plain values, and ConfigMap keys resolved from `maps`
    (the base's by default); an optional key a ConfigMap does not hold is not set."""
    maps = config_maps() if maps is None else maps
    env = {}
    for entry in container(name).get("env", []):
        if "valueFrom" in entry:
            assert set(entry) == {"name", "valueFrom"}, f"{name}: {entry}"
            ((source, ref),) = entry["valueFrom"].items()
            assert source == "configMapKeyRef", f"{name}: {entry['name']} from {source}"
            assert ref["name"] in maps, f"{name}: no ConfigMap {ref['name']} is generated"
            data = maps[ref["name"]]
            if ref["key"] in data:
                env[entry["name"]] = data[ref["key"]]
            else:  # without optional, the pod would not start
                assert ref.get("optional") is True, f"{name}: {entry['name']} is not optional"
            continue
        assert set(entry) == {"name", "value"}, f"{name}: {entry['name']} is not a plain value"
        assert isinstance(entry["value"], str), f"{name}: {entry['name']} must be a string"
        env[entry["name"]] = entry["value"]
    return env


def settings_of(
    name: str, tmp_path: Path, maps: Mapping[str, Mapping[str, str]] | None = None
) -> Any:
    """The deployment's env loaded by the service's own load(), mounted files made real."""
    env = dict(env_of(name, maps))
    mounts = {m["mountPath"]: m for m in container(name).get("volumeMounts", [])}
    for variable, value in env.items():
        if not value.startswith("/etc/dualnova/"):
            continue
        mount = str(PurePosixPath(value).parent)
        assert mount in mounts, f"{name}: {variable}={value} is under no volume mount"
        local = tmp_path / name / value.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text("kubernetes-test-token\n")
        env[variable] = str(local)
    return CONFIG[name].load(env)


def registered_names(name: str) -> set[str]:
    """The health names the server publishes at start, from its own health classes."""

    async def publish() -> set[str]:
        if name == INFERENCE:
            health: Any = InferenceHealth(inference_config.Settings(), probes=None)  # type: ignore[arg-type]
        else:
            health = GatewayHealth()
        await health.board.publish()
        return set(health.servicer._listed)

    return asyncio.run(publish())


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def pod_labels(name: str) -> dict[str, str]:
    return deployment(name)["spec"]["template"]["metadata"]["labels"]


def liveness_argv(name: str) -> list[str]:
    """dualnova's argv in the liveness exec probe (the shell's status test follows it)."""
    command = container(name)["livenessProbe"]["exec"]["command"]
    assert command[:2] == ["sh", "-c"], f"{name}: {command}"
    probe, _, _verdict = command[2].partition(";")
    argv = shlex.split(probe)
    assert argv[0] == "dualnova", argv
    return argv[1:]


# --- every manifest: parses, the schema, the kustomization ---------------------------------


def test_the_kustomization_lists_every_manifest_in_the_base() -> None:
    listed = set(load_kustomization(BASE)["resources"])
    present = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


@pytest.mark.parametrize(
    ("resource", "document"),
    DOCUMENTS,
    ids=[f"{doc['kind']}/{doc['metadata']['name']}" for _, doc in DOCUMENTS],
)
def test_every_manifest_is_valid_kubernetes(resource: str, document: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        pytest.fail(f"{resource}: {error.message} at {list(error.path)}")


def test_the_kubernetes_validate_command_accepts_the_base() -> None:
    """The command line the issue names, over every listed file (it reads them itself)."""
    files = [str(BASE / r) for r in load_kustomization(BASE)["resources"]]
    command = [str(Path(sys.executable).with_name("kubernetes-validate"))]
    result = subprocess.run(
        [*command, "--strict", "--quiet", "-k", K8S_VERSION, *files],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_strict_validation_rejects_an_unknown_field() -> None:
    """The validator really is strict and offline: a typo must fail, not pass silently."""
    broken = yaml.safe_load(yaml.safe_dump(deployment(INFERENCE)))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_the_base_has_every_component_resource() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in DOCUMENTS}
    for name in (INFERENCE, GATEWAY):
        for kind in ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"):
            assert (kind, name) in kinds
        assert ("ServiceAccount", name) in kinds
    assert ("NetworkPolicy", INFERENCE) in kinds


# --- programs, ports, variables ------------------------------------------------------------


@pytest.mark.parametrize("name", [INFERENCE, GATEWAY])
def test_each_deployment_runs_its_program(name: str) -> None:
    command = container(name)["command"]
    assert command == ["python", "-m", MODULE[name]]
    assert (REPO / MODULE[name] / "__main__.py").is_file()


@pytest.mark.parametrize("name", [INFERENCE, GATEWAY])
def test_every_variable_is_one_the_program_reads(name: str) -> None:
    unknown = set(env_names(name)) - known_variables(PROGRAM[name])
    assert not unknown, f"{name} sets variables nothing reads: {sorted(unknown)}"


@pytest.mark.parametrize("name", [INFERENCE, GATEWAY])
def test_the_environment_passes_the_services_own_validation(name: str, tmp_path: Path) -> None:
    settings = settings_of(name, tmp_path)
    host, _, port = settings.listen.rpartition(":")
    assert host == "0.0.0.0", "listen on the pod's interfaces, not loopback"
    (container_port,) = container(name)["ports"]
    assert int(port) == container_port["containerPort"]
    assert container_port["name"] == "grpc"


def test_the_gateway_reaches_the_headless_inference_service(tmp_path: Path) -> None:
    service = of_kind("Service")[INFERENCE]
    assert service["spec"]["clusterIP"] == "None", "headless: one DNS address per pod"
    (port,) = service["spec"]["ports"]
    target = settings_of(GATEWAY, tmp_path).inference_target
    assert target == f"dns:///{INFERENCE}:{port['port']}"
    listen_port = int(settings_of(INFERENCE, tmp_path).listen.rpartition(":")[2])
    assert port["port"] == listen_port
    assert port["targetPort"] == container(INFERENCE)["ports"][0]["name"]


def test_the_gateway_service_exposes_the_gateway_port(tmp_path: Path) -> None:
    service = of_kind("Service")[GATEWAY]
    assert service["spec"].get("clusterIP") != "None"
    (port,) = service["spec"]["ports"]
    assert port["port"] == int(settings_of(GATEWAY, tmp_path).listen.rpartition(":")[2])
    assert port["targetPort"] == container(GATEWAY)["ports"][0]["name"]


@pytest.mark.parametrize("name", [INFERENCE, GATEWAY])
def test_secret_backed_files_come_from_mounted_secrets(name: str) -> None:
    volumes = {v["name"]: v for v in pod_spec(name).get("volumes", [])}
    mounts = {m["mountPath"]: m for m in container(name).get("volumeMounts", [])}
    files = [value for value in env_of(name).values() if value.startswith("/etc/dualnova/")]
    assert files, f"{name} reads no token file: the hop would be open"
    for value in files:
        mount = mounts[str(PurePosixPath(value).parent)]
        assert mount.get("readOnly") is True
        assert "secret" in volumes[mount["name"]], f"{value} is not from a Secret"


def test_the_upstream_token_is_one_secret_on_both_sides() -> None:
    def secret_of(name: str, variable: str) -> str:
        path = PurePosixPath(env_of(name)[variable])
        mounts = {m["mountPath"]: m for m in container(name)["volumeMounts"]}
        volumes = {v["name"]: v for v in pod_spec(name)["volumes"]}
        volume = volumes[mounts[str(path.parent)]["name"]]
        return f"{volume['secret']['secretName']}/{path.name}"

    inference = secret_of(INFERENCE, inference_config.AUTH_TOKENS_FILE.variable)
    gateway = secret_of(GATEWAY, gateway_config.UPSTREAM_TOKEN_FILE.variable)
    assert inference == gateway


# --- probes --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [INFERENCE, GATEWAY])
def test_readiness_is_the_native_grpc_probe_on_the_whole_server(name: str, tmp_path: Path) -> None:
    probe = container(name)["readinessProbe"]["grpc"]
    assert probe["service"] == ""
    assert probe["service"] in registered_names(name)
    assert probe["port"] == int(settings_of(name, tmp_path).listen.rpartition(":")[2])


@pytest.mark.parametrize("name", [INFERENCE, GATEWAY])
def test_liveness_asks_a_registered_name_on_the_listen_port(name: str, tmp_path: Path) -> None:
    argv = liveness_argv(name)
    assert argv[0] == "health"
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        pytest.fail(f"dualnova rejects the liveness probe {argv!r} (exit {exit_.code})")
    assert args.service in registered_names(name)
    host, _, port = args.addr.rpartition(":")
    assert host == "127.0.0.1"
    assert int(port) == int(settings_of(name, tmp_path).listen.rpartition(":")[2])
    probe = container(name)["livenessProbe"]
    # connect, then the RPC, each within --timeout: the probe's own timeout must cover both.
    assert probe["timeoutSeconds"] > 2 * args.timeout


@pytest.mark.parametrize("name", [INFERENCE, GATEWAY])
@pytest.mark.parametrize(
    ("status", "alive"),
    [
        (health_cli.EXIT_SERVING, True),
        # NOT_SERVING: Bedrock (or, for the gateway, the inference service) is down, but this
        # process answers. Restarting it would not bring Bedrock back.
        (health_cli.EXIT_UNHEALTHY, True),
        (health_cli.EXIT_CONNECTION_FAILED, False),
        (health_cli.EXIT_RPC_FAILED, False),
        (health_cli.EXIT_USAGE, False),
    ],
)
def test_liveness_fails_only_when_the_server_does_not_answer(
    name: str, status: int, alive: bool, tmp_path: Path
) -> None:
    """The probe's shell, run with a `dualnova` that exits with each of health's statuses."""
    fake = tmp_path / "dualnova"
    fake.write_text(f"#!/bin/sh\nexit {status}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    command = container(name)["livenessProbe"]["exec"]["command"]
    result = subprocess.run(command, env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, timeout=10)
    assert (result.returncode == 0) is alive


def test_liveness_passes_on_a_gateway_whose_upstream_is_down_and_fails_once_it_is_gone(
    tmp_path: Path,
) -> None:
    """The real probe command against a real gateway with no inference service behind it."""
    handle = ServiceHandle(
        "gateway",
        "gateway",
        gateway_config.LISTEN.variable,
        {**SERVICE_DEFAULTS, gateway_config.INFERENCE_TARGET.variable: f"127.0.0.1:{free_port()}"},
        log_path=tmp_path / "gateway.log",
    )
    command = container(GATEWAY)["livenessProbe"]["exec"]["command"]
    address = liveness_argv(GATEWAY)[liveness_argv(GATEWAY).index("--addr") + 1]
    probe = [*command[:2], command[2].replace(address, handle.address)]
    path = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}

    def run(argv: list[str]) -> int:
        return subprocess.run(argv, env=path, capture_output=True, timeout=30).returncode

    handle.start()
    try:
        readiness = [str(Path(sys.executable).with_name("dualnova")), "health"]
        assert run([*readiness, "--addr", handle.address]) == health_cli.EXIT_UNHEALTHY
        assert run(probe) == 0, "NOT_SERVING for want of the upstream must not restart the pod"
    finally:
        handle.stop()
    assert run(probe) != 0, "a gateway that does not answer must fail liveness"


@pytest.mark.parametrize("name", [INFERENCE, GATEWAY])
def test_liveness_waits_for_the_port_to_open(name: str) -> None:
    startup = container(name)["startupProbe"]
    assert startup["tcpSocket"]["port"] == "grpc"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30


@pytest.mark.parametrize("name", [INFERENCE, GATEWAY])
def test_the_pod_leaves_the_endpoints_before_it_refuses_calls(name: str, tmp_path: Path) -> None:
    settings = settings_of(name, tmp_path)
    readiness = container(name)["readinessProbe"]
    noticed = readiness["periodSeconds"] * readiness["failureThreshold"]
    assert settings.shutdown_delay_s >= noticed


@pytest.mark.parametrize("name", [INFERENCE, GATEWAY])
def test_the_termination_grace_period_covers_the_drain(name: str, tmp_path: Path) -> None:
    settings = settings_of(name, tmp_path)
    drain = settings.shutdown_delay_s + settings.shutdown_grace_s
    assert pod_spec(name)["terminationGracePeriodSeconds"] >= drain + 5


# --- resources, security -------------------------------------------------------------------


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (500m, 2, 256Mi) as a number."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "": 1}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|)", str(value))
    assert match, f"not a quantity: {value!r}"
    return float(match[1]) * units[match[2]]


@pytest.mark.parametrize("name", [INFERENCE, GATEWAY])
def test_requests_and_limits(name: str) -> None:
    resources = container(name)["resources"]
    for resource in ("cpu", "memory"):
        request = quantity(resources["requests"][resource])
        limit = quantity(resources["limits"][resource])
        assert 0 < request <= limit, resource


def dockerfile_user() -> int:
    (user,) = re.findall(r"^USER\s+(\d+)", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    return int(user)


@pytest.mark.parametrize("name", [INFERENCE, GATEWAY])
def test_the_pods_run_locked_down(name: str) -> None:
    assert dockerfile_user() == DOCKER_UID
    pod = pod_spec(name)["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == DOCKER_UID
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    own = container(name)["securityContext"]
    assert own["runAsNonRoot"] is True
    assert own["runAsUser"] == DOCKER_UID
    assert own["readOnlyRootFilesystem"] is True
    assert own["allowPrivilegeEscalation"] is False
    assert own.get("privileged", False) is False
    assert own["capabilities"] == {"drop": ["ALL"]}
    assert own["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_spec(name)["automountServiceAccountToken"] is False


@pytest.mark.parametrize("name", [INFERENCE, GATEWAY])
def test_the_only_writable_path_is_an_empty_dir(name: str) -> None:
    volumes = {v["name"]: v for v in pod_spec(name)["volumes"]}
    for mount in container(name)["volumeMounts"]:
        if not mount.get("readOnly"):
            assert "emptyDir" in volumes[mount["name"]], mount


def test_only_the_inference_service_account_carries_an_aws_role() -> None:
    accounts = of_kind("ServiceAccount")
    assert pod_spec(INFERENCE)["serviceAccountName"] == INFERENCE
    assert pod_spec(GATEWAY)["serviceAccountName"] == GATEWAY
    role = accounts[INFERENCE]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@-]+", role)
    assert "annotations" not in accounts[GATEWAY]["metadata"]


# --- selectors -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [INFERENCE, GATEWAY])
def test_each_deployment_selects_its_own_pods_only(name: str) -> None:
    selector = deployment(name)["spec"]["selector"]["matchLabels"]
    assert labels_match(selector, pod_labels(name))
    other = GATEWAY if name == INFERENCE else INFERENCE
    assert not labels_match(selector, pod_labels(other))


@pytest.mark.parametrize("name", [INFERENCE, GATEWAY])
def test_service_pdb_and_hpa_point_at_the_deployment(name: str) -> None:
    other = GATEWAY if name == INFERENCE else INFERENCE
    for selector in (
        of_kind("Service")[name]["spec"]["selector"],
        of_kind("PodDisruptionBudget")[name]["spec"]["selector"]["matchLabels"],
    ):
        assert labels_match(selector, pod_labels(name))
        assert not labels_match(selector, pod_labels(other))
    target = of_kind("HorizontalPodAutoscaler")[name]["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", name)
    hpa = of_kind("HorizontalPodAutoscaler")[name]["spec"]
    assert 2 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    # A PDB of maxUnavailable 1 with a single replica would block every node drain.
    assert of_kind("PodDisruptionBudget")[name]["spec"]["maxUnavailable"] == 1


def test_only_the_gateway_reaches_the_inference_port() -> None:
    policy = of_kind("NetworkPolicy")[INFERENCE]["spec"]
    assert labels_match(policy["podSelector"]["matchLabels"], pod_labels(INFERENCE))
    assert not labels_match(policy["podSelector"]["matchLabels"], pod_labels(GATEWAY))
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    (source,) = rule["from"]
    assert set(source) == {"podSelector"}, "pods of this namespace only"
    assert labels_match(source["podSelector"]["matchLabels"], pod_labels(GATEWAY))
    assert not labels_match(source["podSelector"]["matchLabels"], pod_labels(INFERENCE))
    (port,) = rule["ports"]
    assert port == {"protocol": "TCP", "port": container(INFERENCE)["ports"][0]["containerPort"]}


# --- the knowledge base --------------------------------------------------------------------


def knowledge_base_entry() -> dict[str, Any]:
    variable = inference_config.KNOWLEDGE_BASE.variable
    (entry,) = [e for e in container(INFERENCE)["env"] if e["name"] == variable]
    return entry


def test_the_knowledge_base_id_comes_from_the_generated_config_map_and_is_optional(
    tmp_path: Path,
) -> None:
    ref = knowledge_base_entry()["valueFrom"]["configMapKeyRef"]
    assert ref == {
        "name": INFERENCE,
        "key": inference_config.KNOWLEDGE_BASE.variable,
        "optional": True,
    }
    generator = config_generators(BASE)[INFERENCE]
    # The hash suffix is what makes a changed id roll out as a new pod template.
    assert not generator.get("options", {}).get("disableNameSuffixHash")
    assert labels_match(generator["options"]["labels"], pod_labels(INFERENCE))
    # The base names no knowledge base: an environment without one has none.
    assert inference_config.KNOWLEDGE_BASE.variable not in literals(generator)
    assert settings_of(INFERENCE, tmp_path).knowledge_base_id is None
    assert inference_config.KNOWLEDGE_BASE.variable not in env_of(GATEWAY)


def test_the_overlay_sets_a_knowledge_base_the_service_accepts(tmp_path: Path) -> None:
    chosen = literals(config_generators(OVERLAY)[INFERENCE])
    (knowledge_base,) = chosen.values()
    settings = settings_of(INFERENCE, tmp_path, config_maps(overlay=True))
    assert settings.knowledge_base_id == knowledge_base
    assert set(chosen) == {inference_config.KNOWLEDGE_BASE.variable}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (its kustomize) not here")
def test_the_example_overlay_renders_with_kustomize_and_validates() -> None:
    """kubectl's own kustomize: the hashed ConfigMap is the one the Deployment reads."""
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(OVERLAY)], capture_output=True, text=True, timeout=60
    )
    assert rendered.returncode == 0, rendered.stderr
    documents = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    for document in documents:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
        assert document["metadata"].get("namespace") == "dualnova", document["metadata"]
    (config_map,) = [doc for doc in documents if doc["kind"] == "ConfigMap"]
    name = config_map["metadata"]["name"]
    assert re.fullmatch(rf"{INFERENCE}-[a-z0-9]{{10}}", name), name
    assert config_map["data"] == literals(config_generators(OVERLAY)[INFERENCE])
    deployments = {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == "Deployment"}
    inference = deployments[INFERENCE]
    (env_entry,) = [
        entry
        for entry in inference["spec"]["template"]["spec"]["containers"][0]["env"]
        if entry["name"] == inference_config.KNOWLEDGE_BASE.variable
    ]
    assert env_entry["valueFrom"]["configMapKeyRef"]["name"] == name


# --- the example overlay -------------------------------------------------------------------


def test_the_overlay_builds_on_the_base_and_pins_the_image_by_digest() -> None:
    overlay = load_kustomization(OVERLAY)
    assert [(OVERLAY / r).resolve() for r in overlay["resources"]] == [BASE.resolve()]
    images = {container(name)["image"] for name in (INFERENCE, GATEWAY)}
    (image,) = overlay["images"]
    assert images == {image["name"]}, "the overlay must name the image the base uses"
    assert "newTag" not in image
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image["digest"])


def test_the_overlay_sets_replicas_and_patches_only_real_resources() -> None:
    overlay = load_kustomization(OVERLAY)
    replicas = {entry["name"]: entry["count"] for entry in overlay["replicas"]}
    assert set(replicas) == {INFERENCE, GATEWAY}
    for name, count in replicas.items():
        hpa = of_kind("HorizontalPodAutoscaler")[name]["spec"]
        assert hpa["minReplicas"] <= count <= hpa["maxReplicas"]
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in DOCUMENTS}
    for patch in overlay.get("patches", []):
        target = patch["target"]
        assert (target["kind"], target["name"]) in kinds
        for operation in yaml.safe_load(patch["patch"]):
            if operation["op"] == "replace":  # replace needs the path to exist in the base
                node: Any = of_kind(target["kind"])[target["name"]]
                for part in operation["path"].strip("/").split("/"):
                    node = node[part.replace("~1", "/").replace("~0", "~")]
