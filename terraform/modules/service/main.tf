# One DualNova component (the inference service or the gateway) on Fargate:
# task definition, service (private subnets, Cloud Map DNS, circuit breaker),
# its security group and CPU autoscaling. The same module runs both.

locals {
  port_name = "grpc"
  # The container health check runs the project's own probe inside the task.
  # Exit 0 is SERVING, 4 NOT_SERVING: both mean the process answers grpc.health,
  # so the container is alive. Whether it should get traffic is the balancers'
  # question (the ALB's gRPC health check, the gateway's health following), so a
  # Bedrock outage marks replicas NOT_SERVING without ECS replacing every task.
  # Any other status (2 no connection, 3 the RPC failed) is unhealthy.
  health_command = var.health_requires_serving ? [
    "CMD", "dualnova", "health", "--addr", "127.0.0.1:${var.container_port}", "--timeout", "3",
    ] : [
    "CMD-SHELL",
    "dualnova health --addr 127.0.0.1:${var.container_port} --timeout 3; s=$?; [ $s -eq 0 ] || [ $s -eq 4 ]",
  ]
}

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = var.execution_role_arn
  task_role_arn            = var.task_role_arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([
    {
      name      = var.component
      image     = var.image
      essential = true
      command   = var.command
      user      = "10001:10001"
      # Writes nothing to its filesystem; tokens and certificates are never files in the image.
      readonlyRootFilesystem = true
      portMappings = [
        {
          name          = local.port_name
          containerPort = var.container_port
          protocol      = "tcp"
          appProtocol   = "grpc"
        }
      ]
      environment = [for k in sort(keys(var.environment)) : { name = k, value = var.environment[k] }]
      healthCheck = {
        command     = local.health_command
        interval    = 15
        # dualnova health may take --timeout to connect and again for the RPC.
        timeout     = 10
        retries     = 3
        startPeriod = 30
      }
      # SIGTERM starts the drain: NOT_SERVING for the shutdown delay, then running
      # streams get the grace to finish. ECS sends SIGKILL after stopTimeout.
      stopTimeout = var.stop_timeout
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = var.log_group_name
          awslogs-region        = var.region
          awslogs-stream-prefix = var.component
        }
      }
    }
  ])

  lifecycle {
    precondition {
      condition     = var.stop_timeout >= var.drain_seconds
      error_message = "stop_timeout must cover the drain (shutdown delay + grace)."
    }
  }

  tags = var.tags
}

resource "aws_security_group" "this" {
  name_prefix = "${var.name}-"
  description = "${var.name}: gRPC from its callers only"
  vpc_id      = var.vpc_id

  lifecycle {
    create_before_destroy = true
  }

  tags = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "callers" {
  for_each                     = toset(var.allowed_security_group_ids)
  security_group_id            = aws_security_group.this.id
  description                  = "gRPC from an allowed caller"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
}

# Out: HTTPS to AWS APIs (Bedrock, CloudWatch, ECR, logs) and gRPC to the other component.
resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.this.id
  description       = "HTTPS to AWS endpoints"
  cidr_ipv4         = var.egress_https_cidr
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "upstream" {
  for_each          = var.upstream_port == null ? {} : { grpc = var.upstream_port }
  security_group_id = aws_security_group.this.id
  description       = "gRPC to the upstream component"
  cidr_ipv4         = var.vpc_cidr
  ip_protocol       = "tcp"
  from_port         = each.value
  to_port           = each.value
}

resource "aws_ecs_service" "this" {
  name                               = var.name
  cluster                            = var.cluster_arn
  task_definition                    = aws_ecs_task_definition.this.arn
  desired_count                      = var.min_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  propagate_tags                     = "SERVICE"
  enable_execute_command             = false
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = var.target_group_arn == null ? null : 30

  # A version that cannot start or never turns healthy rolls back on its own.
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.this.id]
    assign_public_ip = false
  }

  # Each task registers its IP under <discovery_name>.<namespace> (Cloud Map):
  # ECS adds it once the task is running and healthy and removes it when the
  # task starts stopping, before SIGTERM.
  dynamic "service_registries" {
    for_each = aws_service_discovery_service.this
    content {
      registry_arn = service_registries.value.arn
    }
  }

  dynamic "load_balancer" {
    for_each = var.target_group_arn == null ? [] : [var.target_group_arn]
    content {
      target_group_arn = load_balancer.value
      container_name   = var.component
      container_port   = var.container_port
    }
  }

  lifecycle {
    # Autoscaling owns the count after the first apply.
    ignore_changes = [desired_count]
  }

  tags = var.tags
}

resource "aws_service_discovery_service" "this" {
  for_each = var.discovery_name == null ? toset([]) : toset([var.discovery_name])
  name     = each.value

  dns_config {
    namespace_id   = var.namespace_id
    routing_policy = "MULTIVALUE"
    dns_records {
      type = "A"
      # Short, so a re-resolving gateway sees new and removed tasks soon.
      ttl = 10
    }
  }

  health_check_custom_config {
    failure_threshold = 1
  }

  tags = var.tags
}

resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${var.cluster_name}/${aws_ecs_service.this.name}"
  min_capacity       = var.min_count
  max_capacity       = var.max_count
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension
  resource_id        = aws_appautoscaling_target.this.resource_id

  target_tracking_scaling_policy_configuration {
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
    target_value       = var.cpu_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
  }
}
