# Each queue's own policy: no request without TLS, and only the roles that need an action may take
# it, whatever else an identity policy grants:
# - the main queue: only the worker, the sweeper and (when set) the replay operator's role send to it;
#   only the consumer's role receives, deletes and changes visibility (its event source mapping
#   polls with that role), and nobody purges it.
# - the dead-letter queue: nobody sends to it (SQS's own redrive moves copies there, as a service,
#   and RedriveAllowPolicy names the main queue as its only source); only the dead-letter function's
#   role receives, deletes and changes visibility; nobody purges it. The function also checks each
#   copy's DeadLetterQueueSourceArn (outbox/service/dead_letter.py), whatever this policy says.
# The ARNs are built from the names: a queue's policy cannot refer to the queue itself, nor to the
# roles (their for_each depends on the queue URL).
locals {
  queue_names = {
    main       = "${var.name}${local.queue_suffix}"
    dlq        = "${var.name}-dlq${local.queue_suffix}"
    on_failure = "${var.name}-stream-failures"
  }
  queue_arns = { for key, name in local.queue_names : key => "arn:${local.partition}:sqs:${local.region}:${local.account_id}:${name}" }
  role_arns  = { for name in keys(local.function_defaults) : name => "arn:${local.partition}:iam::${local.account_id}:role/${var.name}-${name}" }
  # Who may sqs:SendMessage to the main queue (outbox/service/relay.py, the sweeper, outbox replay).
  main_queue_senders = concat(
    [local.role_arns.worker, local.role_arns.sweeper],
    var.replay_role_arn == null ? [] : [var.replay_role_arn],
  )
  # Who takes copies off each queue: its event source mapping's function (by its execution role).
  queue_receivers = {
    main = local.role_arns.consumer
    dlq  = local.role_arns["dead-letter"]
  }
  # What taking copies off a queue means: receive, delete, change visibility.
  receive_actions = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:ReceiveMessage"]
  # Every action a queue policy can name, written out (no "sqs:*"): the TLS deny covers them all.
  queue_actions = [
    "sqs:AddPermission",
    "sqs:CancelMessageMoveTask",
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:DeleteQueue",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ListDeadLetterSourceQueues",
    "sqs:ListMessageMoveTasks",
    "sqs:ListQueueTags",
    "sqs:PurgeQueue",
    "sqs:ReceiveMessage",
    "sqs:RemovePermission",
    "sqs:SendMessage",
    "sqs:SetQueueAttributes",
    "sqs:StartMessageMoveTask",
    "sqs:TagQueue",
    "sqs:UntagQueue",
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

  # Receive, delete and visibility: the queue's own function alone.
  dynamic "statement" {
    for_each = contains(keys(local.queue_receivers), each.key) ? [1] : []
    content {
      sid       = "OnlyItsFunctionTakesCopies"
      effect    = "Deny"
      actions   = local.receive_actions
      resources = [local.queue_arns[each.key]]
      principals {
        type        = "*"
        identifiers = ["*"]
      }
      condition {
        test     = "ArnNotEquals"
        variable = "aws:PrincipalArn"
        values   = [local.queue_receivers[each.key]]
      }
    }
  }

  # No function purges a queue: a purge would strand every record in flight (the sweeper re-sends
  # them, alarmed as MessagesResent). An operator who must purge changes this policy first.
  dynamic "statement" {
    for_each = contains(keys(local.queue_receivers), each.key) ? [1] : []
    content {
      sid       = "NobodyPurges"
      effect    = "Deny"
      actions   = ["sqs:PurgeQueue"]
      resources = [local.queue_arns[each.key]]
      principals {
        type        = "*"
        identifiers = ["*"]
      }
    }
  }

  # Only SQS's redrive puts copies into the dead-letter queue: no principal of an account sends to it.
  # (A redrive is SQS's own move, not a request of any principal; should it ever be evaluated as one,
  # it is an AWS service's, which this statement leaves out.)
  dynamic "statement" {
    for_each = each.key == "dlq" ? [1] : []
    content {
      sid       = "OnlyTheRedriveFillsIt"
      effect    = "Deny"
      actions   = ["sqs:SendMessage"]
      resources = [local.queue_arns[each.key]]
      principals {
        type        = "*"
        identifiers = ["*"]
      }
      condition {
        test     = "Bool"
        variable = "aws:PrincipalIsAWSService"
        values   = ["false"]
      }
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
  # The main queue alone may name it as its dead-letter queue.
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [local.queue_arns.main]
  })
  tags = var.tags
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
