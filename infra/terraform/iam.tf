# One role per function; each policy names the exact table, stream, queues, keys and log group it
# needs and nothing else (tests/infra checks that no statement has a "*" action or resource). The
# table is this module's or the caller's (main.tf: local.table_arn, local.stream_arn), and the keys
# are the module's and, for an existing table encrypted with its own key, that key (local.kms_key_arns).
data "aws_iam_policy_document" "assume_lambda" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "api" {
  statement {
    sid       = "AcceptAndReadMessages"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
    resources = [local.table_arn]
  }
  statement {
    sid       = "TableKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = local.kms_key_arns
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["api"].arn}:log-stream:*"]
  }
}

data "aws_iam_policy_document" "worker" {
  statement {
    sid       = "ReadTheStream"
    actions   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"]
    resources = [local.stream_arn]
  }
  statement {
    sid       = "FlipRecords"
    actions   = ["dynamodb:UpdateItem"]
    resources = [local.table_arn]
  }
  statement {
    sid       = "PublishAndReportFailedBatches"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.main.arn, aws_sqs_queue.on_failure.arn]
  }
  statement {
    sid       = "TableAndQueueKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = local.kms_key_arns
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["worker"].arn}:log-stream:*"]
  }
}

data "aws_iam_policy_document" "consumer" {
  # ChangeMessageVisibility backs a retry off; GetQueueUrl finds the queue from a record's ARN, once.
  statement {
    sid = "ReceiveFromTheQueue"
    actions = [
      "sqs:ChangeMessageVisibility",
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
      "sqs:ReceiveMessage",
    ]
    resources = [aws_sqs_queue.main.arn]
  }
  statement {
    sid       = "DriveTheLifecycle"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [local.table_arn]
  }
  statement {
    sid       = "TableAndQueueKey"
    actions   = ["kms:Decrypt"]
    resources = local.kms_key_arns
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["consumer"].arn}:log-stream:*"]
  }
}

locals {
  function_policies = {
    api      = data.aws_iam_policy_document.api.json
    worker   = data.aws_iam_policy_document.worker.json
    consumer = data.aws_iam_policy_document.consumer.json
  }
}

resource "aws_iam_role" "function" {
  for_each = local.functions

  name               = "${var.name}-${each.key}"
  description        = "Execution role of the ${var.name}-${each.key} function"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions

  name   = "${var.name}-${each.key}"
  role   = aws_iam_role.function[each.key].id
  policy = local.function_policies[each.key]
}

# X-Ray's PutTraceSegments and PutTelemetryRecords take no resource ARN (AWS documents "*" as the only
# resource), so the AWS-managed write-only policy grants them rather than a "*" statement of ours.
resource "aws_iam_role_policy_attachment" "xray" {
  for_each = local.functions

  role       = aws_iam_role.function[each.key].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}
