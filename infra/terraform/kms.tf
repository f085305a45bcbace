# One customer-managed key encrypts the table, the queues, the log groups and the functions'
# environment. In a key policy, Resource "*" means "this key"; the policy names no "*" action.
data "aws_iam_policy_document" "kms" {
  # checkov:skip=CKV_AWS_109:A key policy's Resource "*" is this key only; administration is delegated to the account's IAM.
  # checkov:skip=CKV_AWS_111:A key policy's Resource "*" is this key only; writes are limited to the key's own actions.
  # checkov:skip=CKV_AWS_356:A key policy cannot name its own key's ARN; "*" in a key policy means this key.
  statement {
    sid    = "AccountAdministersAndDelegatesToIam"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
    actions = [
      "kms:CancelKeyDeletion",
      "kms:Create*",
      "kms:Decrypt",
      "kms:Delete*",
      "kms:Describe*",
      "kms:Disable*",
      "kms:Enable*",
      "kms:Encrypt",
      "kms:GenerateDataKey*",
      "kms:Get*",
      "kms:List*",
      "kms:Put*",
      "kms:ReEncrypt*",
      "kms:Revoke*",
      "kms:RetireGrant",
      "kms:ScheduleKeyDeletion",
      "kms:TagResource",
      "kms:UntagResource",
      "kms:Update*",
    ]
    resources = ["*"]
  }

  # No use of the key over plain HTTP, by anyone. AWS services calling KMS for the table, queues,
  # logs and functions do so over TLS (a request without the key is not matched by the condition).
  statement {
    sid    = "DenyWithoutTls"
    effect = "Deny"
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*", "kms:CreateGrant"]
    resources = ["*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid    = "CloudWatchLogsEncryptsThisModulesLogGroups"
    effect = "Allow"
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    actions   = ["kms:Decrypt", "kms:Describe*", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]
    resources = ["*"]
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/*/${var.name}-*"]
    }
  }
}

# The table settings are checked on the key because every policy, function, queue and log group
# depends on it: a wrong combination stops here, before anything that names the table. (On a data
# source, a condition on values known only after apply would defer its read to the apply.)
resource "aws_kms_key" "this" {
  description             = "${var.name}: ${var.create_table ? "table, " : ""}queues, logs and function environment"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = var.tags

  lifecycle {
    precondition {
      condition     = var.create_table || (var.table_name != null && var.table_stream_arn != null)
      error_message = "create_table = false needs table_name and table_stream_arn: the existing table's stream (view type NEW_IMAGE or NEW_AND_OLD_IMAGES)."
    }
    precondition {
      condition     = !var.create_table || (var.table_name == null && var.table_stream_arn == null && var.table_kms_key_arn == null)
      error_message = "table_name, table_stream_arn and table_kms_key_arn name an existing table: set create_table = false to attach to it."
    }
    precondition {
      condition     = var.create_table || (var.hash_key != null && var.range_key != null)
      error_message = "create_table = false needs hash_key and range_key: the existing table's key attribute names (pk and sk are the defaults of the module's own table only)."
    }
    precondition {
      condition     = var.create_table || try(strcontains(var.table_stream_arn, ":table/${var.table_name}/stream/"), true)
      error_message = "table_stream_arn must be the stream of the table table_name names."
    }
  }
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}
