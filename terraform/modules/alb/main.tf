# The gateway's front door: an internal ALB (private subnets only) speaking
# gRPC over HTTPS to callers and gRPC (HTTP/2) to the gateway's tasks.

resource "aws_security_group" "this" {
  name_prefix = "${var.name}-alb-"
  description = "${var.name}: HTTPS from callers inside the network"
  vpc_id      = var.vpc_id

  lifecycle {
    create_before_destroy = true
  }

  tags = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "https" {
  for_each          = toset(var.allowed_cidrs)
  security_group_id = aws_security_group.this.id
  description       = "HTTPS (gRPC) from callers"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "targets" {
  security_group_id = aws_security_group.this.id
  description       = "gRPC to the gateway tasks"
  cidr_ipv4         = var.vpc_cidr
  ip_protocol       = "tcp"
  from_port         = var.target_port
  to_port           = var.target_port
}

resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_150:deletion protection is var.deletion_protection (default true, prod true); dev turns it off so the environment can be torn down
  #checkov:skip=CKV2_AWS_28:internal ALB reached only from inside the VPC; attach a WAF web ACL (aws_wafv2_web_acl_association) where policy requires one
  name                       = substr("${var.name}-gw", 0, 32)
  internal                   = true
  load_balancer_type         = "application"
  subnets                    = var.private_subnet_ids
  security_groups            = [aws_security_group.this.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection
  # A Nova answer can stream for minutes; the idle timeout is per connection
  # without bytes, so it is the longest silence allowed, not the longest stream.
  idle_timeout = var.idle_timeout

  access_logs {
    enabled = var.access_logs_bucket != null
    bucket  = coalesce(var.access_logs_bucket, "unused")
    prefix  = var.name
  }

  tags = var.tags
}

resource "aws_lb_target_group" "gateway" {
  name             = substr("${var.name}-gw-grpc", 0, 32)
  target_type      = "ip"
  vpc_id           = var.vpc_id
  port             = var.target_port
  protocol         = "HTTP"
  protocol_version = "GRPC"
  # ECS deregisters a stopping task and waits this long (running streams go on,
  # no new ones start) before it sends SIGTERM and the gateway's own drain begins.
  deregistration_delay = var.deregistration_delay

  # grpc.health.v1 Check on "" (the whole gateway), healthy on gRPC status 0.
  # The ALB reads only the gRPC status, not the SERVING / NOT_SERVING in the
  # answer: a gateway that answers is healthy, one that stops answering is not.
  # On a task stop ECS deregisters the target first and waits the
  # deregistration delay before SIGTERM, so no new call reaches a draining task.
  health_check {
    enabled             = true
    path                = "/grpc.health.v1.Health/Check"
    matcher             = "0"
    protocol            = "HTTP"
    port                = "traffic-port"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = var.tags
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.gateway.arn
  }

  tags = var.tags
}
