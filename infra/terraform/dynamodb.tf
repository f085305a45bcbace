# Key schema, record index, TTL attribute and stream view as outbox/adapters/models.py declares
# them, the key names from hash_key and range_key (tests/infra checks this against the PynamoDB
# models). With create_table = false the caller's table is used instead (main.tf: local.table_*),
# and it must have the same record index.
resource "aws_dynamodb_table" "this" {
  count = var.create_table ? 1 : 0

  name                        = var.name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = local.hash_key
  range_key                   = local.range_key
  stream_enabled              = true
  stream_view_type            = "NEW_IMAGE"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = local.hash_key
    type = "S"
  }

  attribute {
    name = local.range_key
    type = "S"
  }

  attribute {
    name = local.record_index.hash_key
    type = "S"
  }

  attribute {
    name = local.record_index.range_key
    type = "S"
  }

  # Every message record by bucket and time, keys only: the sweeper walks it to find what is still
  # PENDING, whether or not its outbox entry is still there. On demand, so no capacity of its own.
  global_secondary_index {
    name            = local.record_index.name
    hash_key        = local.record_index.hash_key
    range_key       = local.record_index.range_key
    projection_type = "KEYS_ONLY"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }

  tags = var.tags
}

# The resource policies of the table and of its stream: no request without TLS, by anyone, whatever
# an identity policy grants (as the queues and the key). The stream carries each outbox entry's
# image, the payload included, so it is held to the same rule. A DynamoDB resource has exactly one
# policy, which PutResourcePolicy replaces whole: the module writes it on its own table, but on a
# caller's table (create_table = false) only with manage_existing_table_policy, since it would
# replace the caller's own policy; output table_policy_documents is there to merge instead.
locals {
  manage_table_policy = var.create_table || var.manage_existing_table_policy
  # Every action on the table's data, items and whole-table copies alike, and on its definition;
  # none of the resource-policy actions, so the policy can never lock out whoever manages it.
  table_policy_actions = [
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:CreateBackup",
    "dynamodb:DeleteItem",
    "dynamodb:DeleteTable",
    "dynamodb:DescribeTable",
    "dynamodb:DescribeTimeToLive",
    "dynamodb:ExportTableToPointInTime",
    "dynamodb:GetItem",
    "dynamodb:PartiQLDelete",
    "dynamodb:PartiQLInsert",
    "dynamodb:PartiQLSelect",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:RestoreTableToPointInTime",
    "dynamodb:Scan",
    "dynamodb:UpdateContinuousBackups",
    "dynamodb:UpdateItem",
    "dynamodb:UpdateTable",
    "dynamodb:UpdateTimeToLive",
  ]
  # A table's policy also governs its indexes (the record index the sweeper queries); a stream has
  # a policy of its own, and only its reads name it (ListStreams names no stream).
  table_policy_targets = {
    table = {
      arn       = local.table_arn
      resources = local.table_arn == null ? [] : [local.table_arn, "${local.table_arn}/index/*"]
      actions   = local.table_policy_actions
    }
    stream = {
      arn       = local.stream_arn
      resources = local.stream_arn == null ? [] : [local.stream_arn]
      actions   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
    }
  }
  table_policies = { for key, target in local.table_policy_targets : key => target if local.manage_table_policy }
}

data "aws_iam_policy_document" "table_policy" {
  for_each = local.table_policy_targets

  statement {
    sid       = "DenyWithoutTls"
    effect    = "Deny"
    actions   = each.value.actions
    resources = each.value.resources
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

# Applied once the table and its stream exist (a stream's policy can only be put on a live stream).
resource "aws_dynamodb_resource_policy" "this" {
  for_each = local.table_policies

  resource_arn = each.value.arn
  policy       = data.aws_iam_policy_document.table_policy[each.key].json
  # Refuse, rather than apply, a policy that would take away the applier's own access to it.
  confirm_remove_self_resource_access = false
}
