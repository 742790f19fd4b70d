# The dev environment: modules/dualnova with dev's sizes.
module "dualnova" {
  source = "../../modules/dualnova"

  name                        = "dualnova-dev"
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
  log_retention_days          = 30
  deletion_protection         = false
  inference                   = { cpu = 512, memory = 1024, min_count = 1, max_count = 3 }
  gateway                     = { cpu = 256, memory = 512, min_count = 1, max_count = 3 }
}
