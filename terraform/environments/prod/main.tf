# The prod environment: modules/dualnova with prod's sizes.
module "dualnova" {
  source = "../../modules/dualnova"

  name                        = "dualnova-prod"
  region                      = var.region
  image                       = var.image
  vpc_id                      = var.vpc_id
  vpc_cidr                    = var.vpc_cidr
  private_subnet_ids          = var.private_subnet_ids
  certificate_arn             = var.certificate_arn
  alb_allowed_cidrs           = var.alb_allowed_cidrs
  alb_access_logs_bucket      = var.alb_access_logs_bucket
  micro_model                 = var.micro_model
  pro_model                   = var.pro_model
  cloudwatch_namespace        = var.cloudwatch_namespace
  knowledge_base_id           = var.knowledge_base_id
  otel_exporter_otlp_endpoint = var.otel_exporter_otlp_endpoint
  log_retention_days          = 365
  deletion_protection         = true
  inference                   = { cpu = 2048, memory = 4096, min_count = 3, max_count = 30, workers = 2 }
  gateway                     = { cpu = 1024, memory = 2048, min_count = 3, max_count = 30, workers = 1 }
}
