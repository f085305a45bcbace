data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.id

  queue_suffix   = var.fifo ? ".fifo" : ""
  lambda_package = coalesce(var.lambda_package, "${path.module}/../../build/lambda/outbox.zip")

  # Handler paths and environment names exactly as outbox/settings.py and the handlers read them.
  functions = {
    api = {
      handler     = "outbox.api.handler"
      description = "POST /messages and GET /messages/{id}: one TransactWriteItems per accepted message"
      environment = {
        OUTBOX_TABLE_NAME     = aws_dynamodb_table.this.name
        OUTBOX_BUCKETS        = tostring(var.buckets)
        OUTBOX_RETENTION_DAYS = tostring(var.retention_days)
        LOG_LEVEL             = var.log_level
      }
    }
    worker = {
      handler     = "worker.handler.handler"
      description = "Relays outbox stream records to SQS, then flips each record PENDING -> QUEUED"
      environment = {
        OUTBOX_TABLE_NAME         = aws_dynamodb_table.this.name
        OUTBOX_QUEUE_URL          = aws_sqs_queue.main.url
        OUTBOX_MAX_RELAY_ATTEMPTS = tostring(var.max_relay_attempts)
        OUTBOX_FLIP_CONCURRENCY   = tostring(var.flip_concurrency)
        LOG_LEVEL                 = var.log_level
      }
    }
    consumer = {
      handler     = "worker.consumer.handler"
      description = "Reference consumer: QUEUED -> PROCESSING -> COMPLETED or FAILED"
      environment = {
        OUTBOX_TABLE_NAME            = aws_dynamodb_table.this.name
        OUTBOX_MAX_DELIVERY_ATTEMPTS = tostring(var.max_delivery_attempts)
        LOG_LEVEL                    = var.log_level
      }
    }
  }
}
