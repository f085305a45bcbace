# The main queue's copies go to the DLQ only after more receives than the consumer's attempt
# budget, so a message is marked FAILED by the consumer before its last copy leaves the queue.
resource "aws_sqs_queue" "dlq" {
  name                      = "${var.name}-dlq${local.queue_suffix}"
  fifo_queue                = var.fifo
  message_retention_seconds = 1209600
  kms_master_key_id         = aws_kms_key.this.arn
  tags                      = var.tags
}

resource "aws_sqs_queue" "main" {
  name                        = "${var.name}${local.queue_suffix}"
  fifo_queue                  = var.fifo
  content_based_deduplication = false
  message_retention_seconds   = var.message_retention_seconds
  # AWS's guidance for a Lambda-consumed queue: six times the function's timeout.
  visibility_timeout_seconds        = 6 * var.functions["consumer"].timeout
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 300
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
  name                      = "${var.name}-stream-failures"
  message_retention_seconds = 1209600
  kms_master_key_id         = aws_kms_key.this.arn
  tags                      = var.tags
}
