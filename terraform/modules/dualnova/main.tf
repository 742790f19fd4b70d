# The whole DualNova deployment of one environment: image repository, keys and
# logs, roles, cluster, the inference service, the gateway and its internal ALB.
# The environments (environments/dev, environments/prod) call this with their
# own sizes; every module here is usable alone.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition

  inference_port = 50051
  gateway_port   = 50052

  # A model id with a geography prefix (us.amazon.nova-pro-v1:0) is a
  # cross-region inference profile: the role needs the profile and the
  # foundation model in every region the profile routes to.
  profile_prefix = "^(us|eu|apac|jp|au|ca|us-gov|global)\\."
  model_ids      = distinct(concat([var.micro_model, var.pro_model], var.allowed_models))
  profile_ids    = [for id in local.model_ids : id if can(regex(local.profile_prefix, id))]
  base_ids = distinct([
    for id in local.model_ids : can(regex(local.profile_prefix, id)) ? replace(id, "/${local.profile_prefix}/", "") : id
  ])
  model_regions = distinct(concat([var.region], length(local.profile_ids) > 0 ? var.inference_profile_regions : []))
  foundation_model_arns = flatten([
    for id in local.base_ids : [
      for r in local.model_regions : "arn:${local.partition}:bedrock:${r}::foundation-model/${id}"
    ]
  ])
  inference_profile_arns = [
    for id in local.profile_ids : "arn:${local.partition}:bedrock:${var.region}:${local.account}:inference-profile/${id}"
  ]

  otel = var.otel_exporter_otlp_endpoint == null ? {} : {
    OTEL_EXPORTER_OTLP_ENDPOINT = var.otel_exporter_otlp_endpoint
  }

  # Every name below is a declared setting of the program (README, Configuration;
  # tests/test_terraform.py holds them to inference_service/config.py and
  # gateway/config.py) or a standard AWS / OpenTelemetry variable.
  inference_environment = merge(
    {
      INFERENCE_LISTEN = "0.0.0.0:${local.inference_port}"
      # TLS is not terminated in the task: only the gateway's security group
      # reaches this port (modules/service), inside private subnets.
      DUALNOVA_ALLOW_PLAINTEXT = "true"
      DUALNOVA_MICRO_MODEL     = var.micro_model
      DUALNOVA_PRO_MODEL       = var.pro_model
      INFERENCE_SHUTDOWN_DELAY = tostring(var.inference_shutdown_delay)
      INFERENCE_SHUTDOWN_GRACE = tostring(var.inference_shutdown_grace)
      INFERENCE_WORKERS        = tostring(var.inference.workers)
      AWS_REGION               = var.region
      OTEL_SERVICE_NAME        = "inference_service"
    },
    length(var.allowed_models) == 0 ? {} : { DUALNOVA_ALLOWED_MODELS = join(",", var.allowed_models) },
    var.cloudwatch_namespace == null ? {} : { DUALNOVA_CLOUDWATCH_NAMESPACE = var.cloudwatch_namespace },
    var.knowledge_base_id == null ? {} : { DUALNOVA_KNOWLEDGE_BASE_ID = var.knowledge_base_id },
    local.otel,
  )

  gateway_environment = merge(
    {
      GATEWAY_LISTEN = "0.0.0.0:${local.gateway_port}"
      # The ALB terminates TLS (HTTPS listener, ACM certificate) and only its
      # security group reaches this port.
      DUALNOVA_ALLOW_PLAINTEXT = "true"
      # One A record per inference task (Cloud Map): the gateway's channel
      # resolves them all and balances round robin over the SERVING ones.
      INFERENCE_TARGET       = "dns:///inference.${var.service_discovery_namespace}:${local.inference_port}"
      GATEWAY_SHUTDOWN_DELAY = tostring(var.gateway_shutdown_delay)
      GATEWAY_SHUTDOWN_GRACE = tostring(var.gateway_shutdown_grace)
      GATEWAY_WORKERS        = tostring(var.gateway.workers)
      GATEWAY_REFLECTION     = "false"
      OTEL_SERVICE_NAME      = "gateway"
    },
    local.otel,
  )
}

module "observability" {
  source             = "../observability"
  name               = var.name
  components         = ["inference", "gateway"]
  log_retention_days = var.log_retention_days
  tags               = var.tags
}

module "ecr" {
  source      = "../ecr"
  name        = var.ecr_repository_name
  kms_key_arn = module.observability.kms_key_arn
  tags        = var.tags
}

module "iam" {
  source                 = "../iam"
  name                   = var.name
  ecr_repository_arn     = module.ecr.repository_arn
  kms_key_arn            = module.observability.kms_key_arn
  log_group_arns         = values(module.observability.log_group_arns)
  foundation_model_arns  = local.foundation_model_arns
  inference_profile_arns = local.inference_profile_arns
  cloudwatch_namespace   = var.cloudwatch_namespace
  knowledge_base_id      = var.knowledge_base_id
  tags                   = var.tags
}

module "cluster" {
  source    = "../ecs_cluster"
  name      = var.name
  namespace = var.service_discovery_namespace
  vpc_id    = var.vpc_id
  tags      = var.tags
}

module "alb" {
  source               = "../alb"
  name                 = var.name
  vpc_id               = var.vpc_id
  vpc_cidr             = var.vpc_cidr
  private_subnet_ids   = var.private_subnet_ids
  allowed_cidrs        = var.alb_allowed_cidrs
  certificate_arn      = var.certificate_arn
  target_port          = local.gateway_port
  deletion_protection  = var.deletion_protection
  access_logs_bucket   = var.alb_access_logs_bucket
  deregistration_delay = var.alb_deregistration_delay
  tags                 = var.tags
}

module "gateway" {
  source                     = "../service"
  name                       = "${var.name}-gateway"
  component                  = "gateway"
  image                      = var.image
  command                    = ["python", "-m", "gateway"]
  environment                = local.gateway_environment
  container_port             = local.gateway_port
  cpu                        = var.gateway.cpu
  memory                     = var.gateway.memory
  min_count                  = var.gateway.min_count
  max_count                  = var.gateway.max_count
  cpu_target_percent         = var.gateway.cpu_target_percent
  stop_timeout               = var.stop_timeout
  drain_seconds              = var.gateway_shutdown_delay + var.gateway_shutdown_grace
  execution_role_arn         = module.iam.execution_role_arn
  task_role_arn              = module.iam.gateway_task_role_arn
  log_group_name             = module.observability.log_group_names["gateway"]
  region                     = var.region
  cluster_arn                = module.cluster.cluster_arn
  cluster_name               = module.cluster.cluster_name
  namespace_id               = module.cluster.namespace_id
  discovery_name             = null
  vpc_id                     = var.vpc_id
  vpc_cidr                   = var.vpc_cidr
  private_subnet_ids         = var.private_subnet_ids
  allowed_security_group_ids = [module.alb.security_group_id]
  upstream_port              = local.inference_port
  target_group_arn           = module.alb.target_group_arn
  tags                       = var.tags
}

module "inference" {
  source                     = "../service"
  name                       = "${var.name}-inference"
  component                  = "inference"
  image                      = var.image
  command                    = ["python", "-m", "inference_service"]
  environment                = local.inference_environment
  container_port             = local.inference_port
  cpu                        = var.inference.cpu
  memory                     = var.inference.memory
  min_count                  = var.inference.min_count
  max_count                  = var.inference.max_count
  cpu_target_percent         = var.inference.cpu_target_percent
  stop_timeout               = var.stop_timeout
  drain_seconds              = var.inference_shutdown_delay + var.inference_shutdown_grace
  execution_role_arn         = module.iam.execution_role_arn
  task_role_arn              = module.iam.inference_task_role_arn
  log_group_name             = module.observability.log_group_names["inference"]
  region                     = var.region
  cluster_arn                = module.cluster.cluster_arn
  cluster_name               = module.cluster.cluster_name
  namespace_id               = module.cluster.namespace_id
  discovery_name             = "inference"
  vpc_id                     = var.vpc_id
  vpc_cidr                   = var.vpc_cidr
  private_subnet_ids         = var.private_subnet_ids
  allowed_security_group_ids = [module.gateway.security_group_id]
  upstream_port              = null
  target_group_arn           = null
  tags                       = var.tags
}
