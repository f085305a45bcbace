# One role per function; each policy names the exact table, stream, queues, keys and log group it
# needs and nothing else (tests/infra checks that no statement has a "*" action or resource). The
# table is this module's or the caller's (main.tf: local.table_arn, local.stream_arn), and the keys
# are the module's and, for an existing table encrypted with its own key, that key (local.kms_key_arns).
#
# The table may be the caller's own (create_table = false), holding the caller's items beside the
# outbox's: every item-level grant is held to the outbox's own partition keys with
# dynamodb:LeadingKeys, "MSG#<id>" for message records (outbox/domain/keys.py: RECORD_PREFIX),
# "OUTBOX#<bucket>" for outbox entries and "OUTBOX-META" for the bucket count (outbox/adapters/sweep.py:
# META_PK), so no function can read or write an item of the caller's. Query is granted on the record
# index alone (keys only, of the outbox's own records). Every key grant holds only through the
# services that encrypt with it (kms:ViaService, local.kms_via). tests/infra/test_iam_calls.py runs
# each handler and checks each call against its role's statements, conditions included.
locals {
  leading_keys = {
    records = "MSG#*"
    entries = "OUTBOX#*"
    meta    = "OUTBOX-META"
  }
  # The services a function's key use goes through: the table (and its stream), the queues, the id
  # secret, and Lambda's own decryption of the function's environment.
  kms_via = {
    dynamodb       = "dynamodb.${local.region}.amazonaws.com"
    sqs            = "sqs.${local.region}.amazonaws.com"
    secretsmanager = "secretsmanager.${local.region}.amazonaws.com"
    lambda         = "lambda.${local.region}.amazonaws.com"
  }
}
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
  count = var.create_api ? 1 : 0

  # An accept puts the record and its outbox entry in one transaction; the first accept on a table
  # that keeps no bucket count yet stores it (a conditional put of OUTBOX-META).
  statement {
    sid       = "AcceptMessages"
    actions   = ["dynamodb:PutItem"]
    resources = [local.table_arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = [local.leading_keys.records, local.leading_keys.entries, local.leading_keys.meta]
    }
  }
  # GET reads a record; the first accept reads the table's bucket count. ConditionCheckItem: during
  # an id secret rotation, an accept checks the key's other id (secret.tf).
  statement {
    sid       = "ReadMessagesAndTheBucketCount"
    actions   = ["dynamodb:ConditionCheckItem", "dynamodb:GetItem"]
    resources = [local.table_arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = [local.leading_keys.records, local.leading_keys.meta]
    }
  }
  statement {
    sid       = "ReadTheIdSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.id.arn]
  }
  # The table's key, and the module's, which also decrypts the id secret.
  statement {
    sid       = "TableKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = local.kms_key_arns
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.kms_via.dynamodb, local.kms_via.secretsmanager, local.kms_via.lambda]
    }
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
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = [local.leading_keys.records]
    }
  }
  # A group's older PENDING message that the stream lost is found through the pending index and
  # read back from its record, so the worker relays it first (invariant 8).
  statement {
    sid       = "FindOlderPendingOfAGroup"
    actions   = ["dynamodb:Query"]
    resources = ["${local.table_arn}/index/${local.record_index.name}"]
  }
  statement {
    sid       = "ReadMessageRecords"
    actions   = ["dynamodb:BatchGetItem"]
    resources = [local.table_arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = [local.leading_keys.records]
    }
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
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.kms_via.dynamodb, local.kms_via.sqs, local.kms_via.lambda]
    }
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
  # Leases and ends, each one conditional UpdateItem; it reads no record with GetItem (the consumer
  # runs the caller's delivery code, so it holds nothing it does not call).
  statement {
    sid       = "DriveTheLifecycle"
    actions   = ["dynamodb:UpdateItem"]
    resources = [local.table_arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = [local.leading_keys.records]
    }
  }
  statement {
    sid       = "TableAndQueueKey"
    actions   = ["kms:Decrypt"]
    resources = local.kms_key_arns
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.kms_via.dynamodb, local.kms_via.sqs, local.kms_via.lambda]
    }
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["consumer"].arn}:log-stream:*"]
  }
}

# The sweeper reads and flips message records and reads the bucket count; Query on the record index
# alone, which holds the keys of the outbox's records not yet ended and nothing else.
data "aws_iam_policy_document" "sweeper" {
  statement {
    sid       = "FindPendingMessages"
    actions   = ["dynamodb:Query"]
    resources = ["${local.table_arn}/index/${local.record_index.name}"]
  }
  statement {
    sid       = "ReadAndFlipMessageRecords"
    actions   = ["dynamodb:BatchGetItem", "dynamodb:UpdateItem"]
    resources = [local.table_arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = [local.leading_keys.records]
    }
  }
  statement {
    sid       = "ReadTheBucketCount"
    actions   = ["dynamodb:GetItem"]
    resources = [local.table_arn]
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "dynamodb:LeadingKeys"
      values   = [local.leading_keys.meta]
    }
  }
  statement {
    sid       = "Publish"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.main.arn]
  }
  statement {
    sid       = "TableAndQueueKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = local.kms_key_arns
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.kms_via.dynamodb, local.kms_via.sqs, local.kms_via.lambda]
    }
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["sweeper"].arn}:log-stream:*"]
  }
}

# The dead-letter function reads and ends message records only ("MSG#<id>", as the sweeper's grants
# are scoped), and receives from the dead-letter queue alone.
data "aws_iam_policy_document" "dead_letter" {
  statement {
    sid = "ReceiveFromTheDeadLetterQueue"
    actions = [
      "sqs:ChangeMessageVisibility",
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
      "sqs:ReceiveMessage",
    ]
    resources = [aws_sqs_queue.dlq.arn]
  }
  statement {
    sid       = "EndMessageRecords"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [local.table_arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = [local.leading_keys.records]
    }
  }
  statement {
    sid       = "TableAndQueueKey"
    actions   = ["kms:Decrypt"]
    resources = local.kms_key_arns
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.kms_via.dynamodb, local.kms_via.sqs, local.kms_via.lambda]
    }
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["dead-letter"].arn}:log-stream:*"]
  }
}

# What a service of the caller's needs to write messages with the library (outbox/_outbox.py:
# Outbox.message, transact_write, get) on this table, beside its grants on its own items: the output
# caller_policy_document, explained in docs/security.md. Its first message checks the table
# (DescribeTable) and reads, or stores, the bucket count (OUTBOX-META).
data "aws_iam_policy_document" "caller" {
  statement {
    sid       = "CheckTheTable"
    actions   = ["dynamodb:DescribeTable"]
    resources = [local.table_arn]
  }
  # Inside the caller's TransactWriteItems: the record and the outbox entry of each message.
  statement {
    sid       = "WriteMessages"
    actions   = ["dynamodb:PutItem"]
    resources = [local.table_arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = [local.leading_keys.records, local.leading_keys.entries, local.leading_keys.meta]
    }
  }
  # Outbox.get reads a record; the first message reads the bucket count; during an id secret
  # rotation a message with an idempotency key checks the key's other id (ConditionCheckItem).
  statement {
    sid       = "ReadMessagesAndTheBucketCount"
    actions   = ["dynamodb:ConditionCheckItem", "dynamodb:GetItem"]
    resources = [local.table_arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = [local.leading_keys.records, local.leading_keys.meta]
    }
  }
  statement {
    sid       = "ReadTheIdSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.id.arn]
  }
  statement {
    sid       = "TableKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = local.kms_key_arns
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.kms_via.dynamodb, local.kms_via.secretsmanager]
    }
  }
}

locals {
  function_policies = {
    api           = one(data.aws_iam_policy_document.api[*].json) # null without the API
    worker        = data.aws_iam_policy_document.worker.json
    consumer      = data.aws_iam_policy_document.consumer.json
    sweeper       = data.aws_iam_policy_document.sweeper.json
    "dead-letter" = data.aws_iam_policy_document.dead_letter.json
  }
}

resource "aws_iam_role" "function" {
  for_each = local.deployed_functions

  name               = "${var.name}-${each.key}"
  description        = "Execution role of the ${var.name}-${each.key} function"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "function" {
  for_each = local.deployed_functions

  name   = "${var.name}-${each.key}"
  role   = aws_iam_role.function[each.key].id
  policy = local.function_policies[each.key]
}

# X-Ray's PutTraceSegments and PutTelemetryRecords take no resource ARN (AWS documents "*" as the only
# resource), so the AWS-managed write-only policy grants them rather than a "*" statement of ours.
resource "aws_iam_role_policy_attachment" "xray" {
  for_each = local.deployed_functions

  role       = aws_iam_role.function[each.key].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}
