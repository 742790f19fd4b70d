data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  region    = data.aws_region.current.name
  partition = data.aws_partition.current.partition
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    # Only tasks of this account may assume these roles (confused deputy).
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

# --- execution role: ECS itself, to start the task --------------------------
# It pulls the image from the one repository and writes the two log groups;
# nothing else (no secrets, no S3: the code is in the image, never fetched at start).
resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid = "EcrLogin"
    # GetAuthorizationToken has no resource type: IAM accepts only "*" here.
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
  statement {
    sid       = "EcrPull"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [var.ecr_repository_arn]
  }
  statement {
    sid       = "ImageDecrypt"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for arn in var.log_group_arns : "${arn}:log-stream:*"]
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-and-log"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# --- inference task role: the only AWS credentials of the application -------
resource "aws_iam_role" "inference" {
  name               = "${var.name}-inference-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "inference" {
  # ConverseStream is authorized as InvokeModelWithResponseStream, on the model
  # or inference profile named in the request and, for a profile, on the
  # foundation models it routes to.
  statement {
    sid       = "Converse"
    actions   = ["bedrock:InvokeModelWithResponseStream"]
    resources = concat(var.foundation_model_arns, var.inference_profile_arns)
  }
  # Health probes (inference_service/bedrock/probes.py), all unbilled.
  statement {
    sid       = "HealthModels"
    actions   = ["bedrock:GetFoundationModel"]
    resources = var.foundation_model_arns
  }
  dynamic "statement" {
    for_each = length(var.inference_profile_arns) > 0 ? [1] : []
    content {
      sid       = "HealthProfiles"
      actions   = ["bedrock:GetInferenceProfile"]
      resources = var.inference_profile_arns
    }
  }
  statement {
    sid       = "HealthRuntime"
    actions   = ["bedrock:ListAsyncInvokes"]
    resources = ["arn:${local.partition}:bedrock:${local.region}:${local.account}:async-invoke/*"]
  }
  # Grounding (DUALNOVA_KNOWLEDGE_BASE_ID): Retrieve (billed per query) and the
  # knowledge-base health probe's GetKnowledgeBase, on that one knowledge base only;
  # a grounding that names another one is refused by IAM (PERMISSION_DENIED).
  dynamic "statement" {
    for_each = var.knowledge_base_id == null ? [] : [var.knowledge_base_id]
    content {
      sid       = "KnowledgeBase"
      actions   = ["bedrock:Retrieve", "bedrock:GetKnowledgeBase"]
      resources = ["arn:${local.partition}:bedrock:${local.region}:${local.account}:knowledge-base/${statement.value}"]
    }
  }
  # Token metrics (DUALNOVA_CLOUDWATCH_NAMESPACE): PutMetricData has no resource
  # type, so the namespace condition is what scopes it.
  dynamic "statement" {
    for_each = var.cloudwatch_namespace == null ? [] : [var.cloudwatch_namespace]
    content {
      sid       = "TokenMetrics"
      actions   = ["cloudwatch:PutMetricData"]
      resources = ["*"]
      condition {
        test     = "StringEquals"
        variable = "cloudwatch:namespace"
        values   = [statement.value]
      }
    }
  }
}

resource "aws_iam_role_policy" "inference" {
  name   = "bedrock-converse-and-health"
  role   = aws_iam_role.inference.id
  policy = data.aws_iam_policy_document.inference.json
}

# --- gateway task role: no AWS data-plane rights at all ----------------------
# The gateway holds no AWS credentials of use: the role exists so the task has
# an identity of its own (not the execution role's) and carries no policy.
resource "aws_iam_role" "gateway" {
  name               = "${var.name}-gateway-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}
