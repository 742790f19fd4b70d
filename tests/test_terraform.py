"""terraform/ holds what an ECS Fargate deployment must: checked here without a cloud.

No terraform binary runs here (no validate, no plan): every .tf is parsed with
python-hcl2 and the properties the deployment promises are read off the parse.
python-hcl2 keeps string literals quoted ('"IMMUTABLE"') and expressions as
'${...}' text, so the helpers below unquote and search those texts.
"""

from __future__ import annotations

import re
import shlex
import stat
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from dualnova.cli import health as health_cli
from dualnova.cli.main import build_parser
from dualnova.server.settings import ConfigError
from gateway import config as gateway_config
from inference_service import config as inference_config

hcl2 = pytest.importorskip("hcl2")

ROOT = Path(__file__).resolve().parent.parent
TERRAFORM = ROOT / "terraform"
TF_FILES = sorted(TERRAFORM.rglob("*.tf"))
MODULES = TERRAFORM / "modules"


def rel(path: Path) -> str:
    return str(path.relative_to(TERRAFORM))


@cache
def parse(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return hcl2.load(handle)


def unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def blocks(path: Path, kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(type, name, body) of every `resource` or `data` block in one file."""
    for entry in parse(path).get(kind, []):
        for rtype, named in entry.items():
            for name, body in named.items():
                yield unquote(rtype), unquote(name), body


def resources(rtype: str, kind: str = "resource") -> list[tuple[Path, str, dict[str, Any]]]:
    return [
        (path, name, body)
        for path in TF_FILES
        for found, name, body in blocks(path, kind)
        if found == rtype
    ]


def variables(path: Path) -> dict[str, dict[str, Any]]:
    return {
        unquote(name): body
        for entry in parse(path).get("variable", [])
        for name, body in entry.items()
    }


def module_body(path: Path, name: str) -> dict[str, Any]:
    for entry in parse(path).get("module", []):
        for found, body in entry.items():
            if unquote(found) == name:
                return body
    raise AssertionError(f"no module {name} in {rel(path)}")


def locals_of(path: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for entry in parse(path).get("locals", []):
        merged.update(entry)
    return merged


def one(rtype: str) -> dict[str, Any]:
    found = resources(rtype)
    assert len(found) == 1, f"{rtype}: {len(found)} definitions"
    return found[0][2]


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement of a policy document, dynamic ones (their `content`) included."""
    found = list(document.get("statement", []))
    for dynamic in document.get("dynamic", []):
        for label, body in dynamic.items():
            if unquote(label) == "statement":
                found.extend(body["content"])
    return found


def strings(values: Any) -> list[str]:
    return [unquote(value) for value in (values or [])]


SERVICE_TF = MODULES / "service" / "main.tf"
STACK_TF = MODULES / "dualnova" / "main.tf"
IAM_TF = MODULES / "iam" / "main.tf"


def test_there_is_terraform_to_check() -> None:
    roots = {path.parent.relative_to(TERRAFORM).as_posix() for path in TF_FILES}
    for expected in (
        "modules/ecr",
        "modules/ecs_cluster",
        "modules/service",
        "modules/iam",
        "modules/observability",
        "modules/alb",
        "environments/dev",
        "environments/prod",
    ):
        assert expected in roots


@pytest.mark.parametrize("path", TF_FILES, ids=rel)
def test_every_file_parses(path: Path) -> None:
    assert parse(path)


@pytest.mark.parametrize("path", [p for p in TF_FILES if p.name == "variables.tf"], ids=rel)
def test_every_variable_has_a_description_and_a_type(path: Path) -> None:
    declared = variables(path)
    assert declared
    for name, body in declared.items():
        assert unquote(body.get("description", "")).strip(), f"{name}: no description"
        assert body.get("type"), f"{name}: no type"


# --- image ------------------------------------------------------------------

DIGEST = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dualnova@sha256:" + "ab" * 32


def test_ecr_tags_are_immutable_scanned_on_push_and_expire() -> None:
    repository = one("aws_ecr_repository")
    assert unquote(repository["image_tag_mutability"]) == "IMMUTABLE"
    assert repository["image_scanning_configuration"][0]["scan_on_push"] is True
    lifecycle = one("aws_ecr_lifecycle_policy")
    assert "aws_ecr_repository.this.name" in lifecycle["repository"]
    assert "expire" in lifecycle["policy"]


@pytest.mark.parametrize(
    "path",
    [p for p in TF_FILES if p.name == "variables.tf" and "image" in variables(p)],
    ids=rel,
)
def test_the_image_is_taken_by_digest_only(path: Path) -> None:
    (validation,) = variables(path)["image"]["validation"]
    # Terraform's regex (RE2) and Python's agree on this pattern's syntax.
    match = re.search(r'regex\("((?:[^"\\]|\\.)*)"', validation["condition"])
    assert match, validation["condition"]
    pattern = match.group(1).encode().decode("unicode_escape")
    assert "sha256" in pattern
    assert re.search(pattern, DIGEST)
    for tagged in (
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/dualnova:latest",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/dualnova@sha256:abc",
        "dualnova@sha256:" + "ab" * 32,
    ):
        assert not re.search(pattern, tagged), tagged


def test_task_definitions_run_the_image_variable_and_the_stack_passes_one_image() -> None:
    task = one("aws_ecs_task_definition")
    assert "image = var.image" in task["container_definitions"]
    for component in ("inference", "gateway"):
        assert module_body(STACK_TF, component)["image"] == "${var.image}"


def test_the_example_tfvars_parse_and_pin_a_digest() -> None:
    examples = sorted(TERRAFORM.rglob("terraform.tfvars.example"))
    assert examples
    pattern = r"^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$"
    for example in examples:
        values = parse(example)
        assert re.match(pattern, unquote(values["image"]))
    assert "*.tfvars" in (TERRAFORM / ".gitignore").read_text().splitlines()


# --- IAM --------------------------------------------------------------------


def policy_documents() -> dict[str, dict[str, Any]]:
    return {name: body for _, name, body in resources("aws_iam_policy_document", "data")}


def test_no_bedrock_action_has_a_wildcard_resource() -> None:
    checked = 0
    for name, document in policy_documents().items():
        for statement in statements(document):
            actions = strings(statement.get("actions"))
            if not any(action.startswith("bedrock:") for action in actions):
                continue
            checked += 1
            assert not any("*" in action for action in actions), f"{name}: {actions}"
            resources_ = statement["resources"]
            listed = strings(resources_) if isinstance(resources_, list) else [resources_]
            assert "*" not in listed, f"{name}: {actions} on *"
    assert checked >= 3
    # Nothing outside the policy documents names a bedrock action (ARNs aside) either.
    for path in TF_FILES:
        if path != IAM_TF:
            assert not re.search(r"bedrock:[A-Z*]", path.read_text()), rel(path)


def test_the_inference_role_may_only_converse_read_health_and_put_namespaced_metrics() -> None:
    document = policy_documents()["inference"]
    by_action: dict[str, dict[str, Any]] = {}
    for statement in statements(document):
        for action in strings(statement["actions"]):
            by_action[action] = statement
    assert set(by_action) == {
        "bedrock:InvokeModelWithResponseStream",
        "bedrock:GetFoundationModel",
        "bedrock:GetInferenceProfile",
        "bedrock:ListAsyncInvokes",
        "bedrock:Retrieve",
        "bedrock:GetKnowledgeBase",
        "cloudwatch:PutMetricData",
    }
    converse = by_action["bedrock:InvokeModelWithResponseStream"]["resources"]
    assert "var.foundation_model_arns" in converse and "var.inference_profile_arns" in converse
    (condition,) = by_action["cloudwatch:PutMetricData"]["condition"]
    assert unquote(condition["variable"]) == "cloudwatch:namespace"
    assert unquote(condition["test"]) == "StringEquals"


KNOWLEDGE_BASE_ACTIONS = {"bedrock:Retrieve", "bedrock:GetKnowledgeBase"}
KNOWLEDGE_BASE_ARN = (
    "arn:${local.partition}:bedrock:${local.region}:${local.account}"
    ":knowledge-base/${statement.value}"
)


def test_the_knowledge_base_rights_exist_only_with_an_id_and_only_on_that_one() -> None:
    """Retrieve and GetKnowledgeBase: granted when knowledge_base_id is set, on its ARN alone."""
    document = policy_documents()["inference"]
    granting = [
        (label_body, content)
        for dynamic in document.get("dynamic", [])
        for label, label_body in dynamic.items()
        if unquote(label) == "statement"
        for content in label_body["content"]
        if KNOWLEDGE_BASE_ACTIONS & set(strings(content["actions"]))
    ]
    assert len(granting) == 1, "one dynamic statement grants the knowledge base rights"
    (dynamic, content) = granting[0]
    assert dynamic["for_each"] == "${var.knowledge_base_id == null ? [] : [var.knowledge_base_id]}"
    assert set(strings(content["actions"])) == KNOWLEDGE_BASE_ACTIONS
    assert strings(content["resources"]) == [KNOWLEDGE_BASE_ARN]
    # No fixed statement grants them (they would hold without a knowledge base).
    for statement in document.get("statement", []):
        assert not KNOWLEDGE_BASE_ACTIONS & set(strings(statement["actions"]))
    iam = module_body(STACK_TF, "iam")
    assert iam["knowledge_base_id"] == "${var.knowledge_base_id}"


KNOWLEDGE_BASE_VARIABLES = [MODULES / "iam" / "variables.tf", MODULES / "dualnova" / "variables.tf"]


@pytest.mark.parametrize("path", KNOWLEDGE_BASE_VARIABLES, ids=rel)
def test_the_knowledge_base_id_is_optional_and_validated_as_the_service_validates_it(
    path: Path,
) -> None:
    variable = variables(path)["knowledge_base_id"]
    assert variable["default"] is None
    (validation,) = variable["validation"]
    condition = validation["condition"]
    assert condition.startswith("${var.knowledge_base_id == null || "), condition
    match = re.search(r'regex\("((?:[^"\\]|\\.)*)"', condition)
    assert match, condition
    pattern = match.group(1).encode().decode("unicode_escape")
    candidates = ["KBDUALNOVA", "ABCDE12345", "kb12345678", "KBDUALNOV", "KBDUALNOVA1"]
    candidates += ["KB-DUALNOV", "KB DUALNOV", "KBDUALNOV\u00c5", "KBDUALNOV*"]
    for candidate in candidates:
        try:
            inference_config.load({inference_config.KNOWLEDGE_BASE.variable: candidate})
        except ConfigError:
            served = False
        else:
            served = True
        assert (re.search(pattern, candidate) is not None) == served, candidate


def test_the_inference_task_gets_the_knowledge_base_only_when_one_is_set() -> None:
    environment = locals_of(STACK_TF)["inference_environment"]
    variable = inference_config.KNOWLEDGE_BASE.variable
    conditional = f"var.knowledge_base_id == null ? {{}} : {{{variable} = var.knowledge_base_id}}"
    assert conditional in environment, environment


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_each_environment_passes_every_variable_it_takes(environment: str) -> None:
    """A variable an environment declares but never passes on is silently ignored."""
    root = TERRAFORM / "environments" / environment
    used = (root / "main.tf").read_text() + (root / "versions.tf").read_text()
    for name in variables(root / "variables.tf"):
        assert f"var.{name}" in used, f"{environment}: var.{name} is declared but not used"
    stack = module_body(root / "main.tf", "dualnova")
    assert stack["knowledge_base_id"] == "${var.knowledge_base_id}"
    assert variables(root / "variables.tf")["knowledge_base_id"]["default"] is None


def test_the_gateway_role_carries_no_policy() -> None:
    attached = [
        body
        for rtype in (
            "aws_iam_role_policy",
            "aws_iam_role_policy_attachment",
            "aws_iam_policy_attachment",
        )
        for _, _, body in resources(rtype)
    ]
    assert attached
    assert not any("aws_iam_role.gateway" in str(body.get("role", "")) for body in attached)
    gateway_role = [body for _, name, body in resources("aws_iam_role") if name == "gateway"]
    assert len(gateway_role) == 1 and "inline_policy" not in gateway_role[0]
    assert "managed_policy_arns" not in gateway_role[0]


def test_the_execution_role_only_pulls_images_and_writes_logs() -> None:
    actions = {
        action
        for statement in statements(policy_documents()["execution"])
        for action in strings(statement["actions"])
    }
    assert actions == {
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "kms:Decrypt",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }


def test_nothing_is_fetched_from_s3_at_start() -> None:
    for path in TF_FILES:
        text = path.read_text()
        assert "s3:GetObject" not in text and "aws s3" not in text, rel(path)
    for component, module in (("inference", "inference_service"), ("gateway", "gateway")):
        assert module_body(STACK_TF, component)["command"] == ['"python"', '"-m"', f'"{module}"']


# --- services ---------------------------------------------------------------


def test_services_run_in_private_subnets_without_public_ips() -> None:
    service = one("aws_ecs_service")
    (network,) = service["network_configuration"]
    assert network["assign_public_ip"] is False
    assert network["subnets"] == "${var.private_subnet_ids}"
    assert unquote(service["launch_type"]) == "FARGATE"
    alb = one("aws_lb")
    assert alb["internal"] is True and alb["subnets"] == "${var.private_subnet_ids}"


def test_a_failed_deployment_rolls_back() -> None:
    (breaker,) = one("aws_ecs_service")["deployment_circuit_breaker"]
    assert breaker["enable"] is True and breaker["rollback"] is True


def test_the_container_health_check_runs_dualnova_health_on_the_container_port() -> None:
    health = locals_of(SERVICE_TF)["health_command"]
    assert health.count("dualnova") == 2 and health.count("health") >= 2
    assert health.count("127.0.0.1:${var.container_port}") == 2
    assert "healthCheck = {command = local.health_command" in one("aws_ecs_task_definition")[
        "container_definitions"
    ].replace("\n", " ")


PORTS = {"inference": 50051, "gateway": 50052}


def health_shell(component: str) -> str:
    """The default (CMD-SHELL) container health check, with the component's port filled in."""
    match = re.search(r'"CMD-SHELL", "((?:[^"\\]|\\.)*)"', locals_of(SERVICE_TF)["health_command"])
    assert match
    return match.group(1).replace("${var.container_port}", str(PORTS[component]))


@pytest.mark.parametrize("component", sorted(PORTS))
def test_the_health_check_is_a_dualnova_health_command_on_the_listen_port(component: str) -> None:
    assert module_body(STACK_TF, component)["container_port"] == f"${{local.{component}_port}}"
    assert locals_of(STACK_TF)[f"{component}_port"] == PORTS[component]
    argv = shlex.split(health_shell(component).split(";", 1)[0])
    assert argv[:2] == ["dualnova", "health"]
    args = build_parser().parse_args(argv[1:])
    assert args.addr == f"127.0.0.1:{PORTS[component]}"
    # Connect, then the RPC, each within --timeout: ECS's timeout must cover both.
    timeout = re.search(
        r"healthCheck = \{[^}]*timeout = (\d+)",
        one("aws_ecs_task_definition")["container_definitions"],
    )
    assert timeout and int(timeout.group(1)) > 2 * args.timeout


@pytest.mark.parametrize(
    ("status", "healthy"),
    [
        (health_cli.EXIT_SERVING, True),
        # NOT_SERVING: Bedrock (or the inference service) is down, but the process answers;
        # replacing the task would not bring Bedrock back.
        (health_cli.EXIT_UNHEALTHY, True),
        (health_cli.EXIT_CONNECTION_FAILED, False),
        (health_cli.EXIT_RPC_FAILED, False),
        (health_cli.EXIT_USAGE, False),
    ],
)
def test_the_health_check_fails_only_when_the_server_does_not_answer(
    status: int, healthy: bool, tmp_path: Path
) -> None:
    """The check's shell, run with a `dualnova` that exits with each of health's statuses."""
    fake = tmp_path / "dualnova"
    fake.write_text(f"#!/bin/sh\nexit {status}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    result = subprocess.run(
        ["/bin/sh", "-c", health_shell("inference")],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
        timeout=10,
    )
    assert (result.returncode == 0) is healthy


def drain(config: Any) -> float:
    return float(config.SHUTDOWN_DELAY.default + config.SHUTDOWN_GRACE.default)


def default(path: Path, name: str) -> Any:
    return variables(path)[name]["default"]


def test_the_stop_timeout_covers_the_services_default_drain() -> None:
    longest = max(drain(inference_config), drain(gateway_config))
    stack_vars = MODULES / "dualnova" / "variables.tf"
    for path in (MODULES / "service" / "variables.tf", stack_vars):
        timeout = default(path, "stop_timeout")
        assert longest <= timeout <= 120, rel(path)
        (validation,) = variables(path)["stop_timeout"]["validation"]
        assert "var.stop_timeout <= 120" in validation["condition"]
    # The stack's defaults are the programs' own, so the check above is about real numbers.
    for prefix, config in (("inference", inference_config), ("gateway", gateway_config)):
        assert default(stack_vars, f"{prefix}_shutdown_delay") == config.SHUTDOWN_DELAY.default
        assert default(stack_vars, f"{prefix}_shutdown_grace") == config.SHUTDOWN_GRACE.default
        drain_arg = module_body(STACK_TF, prefix)["drain_seconds"]
        assert f"var.{prefix}_shutdown_delay + var.{prefix}_shutdown_grace" in drain_arg
    task = one("aws_ecs_task_definition")
    assert "stopTimeout = var.stop_timeout" in task["container_definitions"]
    (lifecycle,) = task["lifecycle"]
    (precondition,) = lifecycle["precondition"]
    assert precondition["condition"] == "${var.stop_timeout >= var.drain_seconds}"


def test_cpu_autoscaling() -> None:
    policy = one("aws_appautoscaling_policy")
    (config,) = policy["target_tracking_scaling_policy_configuration"]
    (metric,) = config["predefined_metric_specification"]
    assert unquote(metric["predefined_metric_type"]) == "ECSServiceAverageCPUUtilization"


def test_the_gateway_resolves_every_inference_task_by_name() -> None:
    # Cloud Map: one A record per task, so the gateway's round robin sees every replica.
    discovery = one("aws_service_discovery_service")
    (dns,) = discovery["dns_config"]
    assert unquote(dns["routing_policy"]) == "MULTIVALUE"
    (record,) = dns["dns_records"]
    assert unquote(record["type"]) == "A" and record["ttl"] <= 60
    dynamic = {unquote(k): v for d in one("aws_ecs_service")["dynamic"] for k, v in d.items()}
    assert dynamic["service_registries"]["for_each"] == "${aws_service_discovery_service.this}"
    assert one("aws_service_discovery_private_dns_namespace")["vpc"] == "${var.vpc_id}"
    inference = module_body(STACK_TF, "inference")
    assert unquote(inference["discovery_name"]) == "inference"
    assert module_body(STACK_TF, "gateway")["discovery_name"] is None
    target = 'INFERENCE_TARGET = "dns:///inference.${var.service_discovery_namespace}:${local.inference_port}"'
    assert target in locals_of(STACK_TF)["gateway_environment"]
    assert locals_of(STACK_TF)["inference_port"] == 50051
    assert inference["allowed_security_group_ids"] == ["${module.gateway.security_group_id}"]


def test_log_groups_keep_logs_for_a_while_encrypted_with_kms() -> None:
    group = one("aws_cloudwatch_log_group")
    assert group["retention_in_days"] == "${var.log_retention_days}"
    assert group["kms_key_id"] == "${aws_kms_key.this.arn}"
    assert one("aws_kms_key")["enable_key_rotation"] is True
    assert 0 not in [
        default(p, "log_retention_days")
        for p in MODULES.rglob("variables.tf")
        if "log_retention_days" in variables(p)
    ]


# --- the gateway's ALB ------------------------------------------------------


def test_the_gateway_target_group_speaks_grpc_and_checks_grpc_health() -> None:
    group = one("aws_lb_target_group")
    assert unquote(group["protocol_version"]) == "GRPC"
    (check,) = group["health_check"]
    assert unquote(check["path"]) == "/grpc.health.v1.Health/Check"
    assert unquote(check["matcher"]) == "0"


def test_the_listener_is_https_with_the_certificate_variable() -> None:
    listener = one("aws_lb_listener")
    assert unquote(listener["protocol"]) == "HTTPS"
    assert listener["certificate_arn"] == "${var.certificate_arn}"
    assert "TLS13" in default(MODULES / "alb" / "variables.tf", "ssl_policy")


# --- what the containers are told -------------------------------------------


def environment_names(local: str) -> set[str]:
    return set(re.findall(r"\b([A-Z][A-Z0-9_]+) = ", locals_of(STACK_TF)[local]))


def standard(name: str) -> bool:
    return name.startswith(("AWS_", "OTEL_"))


@pytest.mark.parametrize(
    ("local", "config"),
    [("inference_environment", inference_config), ("gateway_environment", gateway_config)],
    ids=["inference", "gateway"],
)
def test_every_container_variable_is_a_declared_setting_or_standard(local: str, config) -> None:
    names = environment_names(local)
    declared = {setting.variable for setting in config.SETTINGS}
    assert len(names) >= 5
    assert {name for name in names if not standard(name)} - declared == set()
    # The secret-bearing settings never travel as plain environment in a task definition.
    assert not {name for name in names if "TOKEN" in name or "_KEY" in name}


def environment_values(local: str) -> dict[str, str]:
    """The first map of the merge (what every deployment sets), with the stack's defaults."""
    stack_vars = variables(MODULES / "dualnova" / "variables.tf")
    ports = {
        "local.inference_port": str(PORTS["inference"]),
        "local.gateway_port": str(PORTS["gateway"]),
    }

    def value(expression: str) -> str:
        if expression.startswith('"'):
            text = unquote(expression)
            for reference, port in ports.items():
                text = text.replace(f"${{{reference}}}", port)
            for name in re.findall(r"\$\{var\.([a-z_]+)\}", text):
                text = text.replace(f"${{var.{name}}}", unquote(stack_vars[name]["default"]))
            assert "${" not in text, expression
            return text
        inner = re.fullmatch(r"(?:tostring\()?var\.([a-z_]+)(?:\.([a-z_]+))?\)?", expression)
        assert inner, expression
        found = stack_vars[inner.group(1)].get("default")
        if inner.group(2):
            found = {"workers": 1}[inner.group(2)] if isinstance(found, dict) else found
        if found is None:  # region: required, so any valid one
            return "us-east-1"
        return str(unquote(found))

    first = locals_of(STACK_TF)[local].split("merge({", 1)[1].split("}, ", 1)[0]
    pairs = re.findall(r'([A-Z][A-Z0-9_]+) = ("[^"]*"|[a-z_.()]+)', first)
    assert pairs
    return {name: value(expression) for name, expression in pairs}


@pytest.mark.parametrize(
    ("local", "config"),
    [("inference_environment", inference_config), ("gateway_environment", gateway_config)],
    ids=["inference", "gateway"],
)
def test_the_container_environment_passes_the_services_own_validation(local: str, config) -> None:
    env = environment_values(local)
    settings = config.load(env)
    assert settings.listen == env[f"{local.split('_')[0].upper()}_LISTEN"]
    assert settings.listen.startswith("0.0.0.0:")


# --- terraform/README.md ----------------------------------------------------


@pytest.mark.parametrize("module", sorted(p.name for p in MODULES.iterdir()), ids=str)
def test_every_module_variable_is_in_the_inputs_table(module: str) -> None:
    readme = (TERRAFORM / "README.md").read_text()
    section = readme.split(f"\n### `modules/{module}`", 1)[1].split("\n### ", 1)[0]
    for name in variables(MODULES / module / "variables.tf"):
        assert f"| `{name}` |" in section, f"{module}: {name}"
