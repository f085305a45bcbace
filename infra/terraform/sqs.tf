# Each queue's own policy: no request without TLS, and only the worker, the sweeper and (when set)
# the replay operator's role may send to the main queue, whatever else an identity policy grants.
# The ARNs are built from the names: a queue's policy cannot refer to the queue itself, nor to the
# roles (their for_each depends on the queue URL).
locals {
  queue_names = {
    main       = "${var.name}${local.queue_suffix}"
    dlq        = "${var.name}-dlq${local.queue_suffix}"
    on_failure = "${var.name}-stream-failures"
  }
  queue_arns = { for key, name in local.queue_names : key => "arn:${local.partition}:sqs:${local.region}:${local.account_id}:${name}" }
  # Who may sqs:SendMessage to the main queue (outbox/relay.py, outbox/sweeper.py, outbox replay).
  main_queue_senders = concat(
    [for name in ["worker", "sweeper"] : "arn:${local.partition}:iam::${local.account_id}:role/${var.name}-${name}"],
    var.replay_role_arn == null ? [] : [var.replay_role_arn],
  )
  # Every action a queue policy can name, written out (no "sqs:*").
  queue_actions = [
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ListDeadLetterSourceQueues",
    "sqs:ListQueueTags",
    "sqs:PurgeQueue",
    "sqs:ReceiveMessage",
    "sqs:SendMessage",
    "sqs:SetQueueAttributes",
  ]
}

data "aws_iam_policy_document" "queue" {
  for_each = local.queue_names

  statement {
    sid       = "DenyWithoutTls"
    effect    = "Deny"
    actions   = local.queue_actions
    resources = [local.queue_arns[each.key]]
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

  dynamic "statement" {
    for_each = each.key == "main" ? [1] : []
    content {
      sid       = "OnlyTheRelaysSend"
      effect    = "Deny"
      actions   = ["sqs:SendMessage"]
      resources = [local.queue_arns[each.key]]
      principals {
        type        = "*"
        identifiers = ["*"]
      }
      condition {
        test     = "ArnNotEquals"
        variable = "aws:PrincipalArn"
        values   = local.main_queue_senders
      }
    }
  }
}

# The main queue's copies go to the DLQ only after more receives than the consumer's attempt
# budget, so a message is marked FAILED by the consumer before its last copy leaves the queue;
# what reaches it anyway (the last receive crashed or timed out) the dead-letter function ends.
resource "aws_sqs_queue" "dlq" {
  name                       = local.queue_names.dlq
  fifo_queue                 = var.fifo
  message_retention_seconds  = 1209600
  visibility_timeout_seconds = 6 * local.function_sizes["dead-letter"].timeout
  kms_master_key_id          = aws_kms_key.this.arn
  policy                     = data.aws_iam_policy_document.queue["dlq"].json
  tags                       = var.tags
}

resource "aws_sqs_queue" "main" {
  name                        = local.queue_names.main
  fifo_queue                  = var.fifo
  content_based_deduplication = false
  message_retention_seconds   = var.message_retention_seconds
  # AWS's guidance for a Lambda-consumed queue: six times the function's timeout.
  visibility_timeout_seconds        = 6 * local.function_sizes["consumer"].timeout
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300
  policy                            = data.aws_iam_policy_document.queue["main"].json
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.dlq_max_receive_count
  })
  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.dlq_max_receive_count > var.max_delivery_attempts
      error_message = "dlq_max_receive_count must exceed max_delivery_attempts, or copies reach the DLQ while their record is still PROCESSING."
    }
  }
}

# Metadata of stream batches the worker could not relay within its retries or the record age;
# `outbox replay` re-drives the records they name.
resource "aws_sqs_queue" "on_failure" {
  name                      = local.queue_names.on_failure
  message_retention_seconds = 1209600
  kms_master_key_id         = aws_kms_key.this.arn
  policy                    = data.aws_iam_policy_document.queue["on_failure"].json
  tags                      = var.tags
}
