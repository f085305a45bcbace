data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.id

  queue_suffix = var.fifo ? ".fifo" : ""

  # The table this module created, or the caller's (create_table = false): every reference to it
  # (IAM, environment, the stream mapping, outputs) goes through these.
  table_name = var.create_table ? aws_dynamodb_table.this[0].name : var.table_name
  table_arn  = var.create_table ? aws_dynamodb_table.this[0].arn : var.table_name == null ? null : "arn:${local.partition}:dynamodb:${local.region}:${local.account_id}:table/${var.table_name}"
  stream_arn = var.create_table ? aws_dynamodb_table.this[0].stream_arn : var.table_stream_arn
  # The record index the sweeper queries (outbox/adapters/models.py: RECORD_INDEX, RECORD_INDEX_KEYS):
  # on the module's table, and required on an existing one.
  record_index = {
    name      = "outbox-records"
    hash_key  = "outbox_pk"
    range_key = "outbox_sk"
  }
  # Keys the functions use: the module's own (queues, logs, environment, its table) and the existing table's.
  kms_key_arns = concat([aws_kms_key.this.arn], var.table_kms_key_arn == null ? [] : [var.table_kms_key_arn])

  # Each function's zip: the consumer's is the caller's when consumer_package is set.
  function_packages = {
    api           = var.lambda_package
    worker        = var.lambda_package
    consumer      = coalesce(var.consumer_package, var.lambda_package)
    sweeper       = var.lambda_package
    "dead-letter" = var.lambda_package
  }
  # Each function's memory, timeout and reserved concurrency: the module's defaults, with whatever
  # the caller set in var.functions (any function, any of the three) merged over them.
  function_defaults = {
    api           = { memory_size = 512, timeout = 10, reserved_concurrency = 100 }
    worker        = { memory_size = 512, timeout = 60, reserved_concurrency = 20 }
    consumer      = { memory_size = 512, timeout = 30, reserved_concurrency = 20 }
    sweeper       = { memory_size = 512, timeout = 300, reserved_concurrency = 1 }
    "dead-letter" = { memory_size = 256, timeout = 30, reserved_concurrency = 2 }
  }
  function_sizes = {
    for name, defaults in local.function_defaults :
    name => merge(defaults, { for setting, value in try(var.functions[name], {}) : setting => value if value != null })
  }
  # The functions deployed: all of local.functions, the API's only with create_api. Everything made
  # per function (role, policy, log group, alarm) iterates over this map. (Written as a conditional
  # so checkov, which cannot evaluate a filtered for expression, still checks each function.)
  deployed_functions = var.create_api ? local.functions : { for name, function in local.functions : name => function if name != "api" }

  # The functions SnapStart applies to (var.snap_start): each publishes versions behind the alias
  # "live", and whatever invokes it (a mapping, the API) invokes the alias. The sweeper is not one.
  snap_start_functions = toset(var.snap_start ? [for name in keys(local.deployed_functions) : name if name != "sweeper"] : [])
  # What invokes each function calls this: the alias under SnapStart, else the function itself.
  invoke_targets = {
    for name, function in aws_lambda_function.this :
    name => contains(local.snap_start_functions, name) ? aws_lambda_alias.live[name].arn : function.arn
  }
  # Under SnapStart the functions do their set-up (clients, models) in the init phase it snapshots.
  eager_init_environment = { OUTBOX_EAGER_INIT = "true" }

  # The table's key names: the caller's; pk and sk on the module's own table when not given (an
  # existing table's are required: aws_kms_key.this's precondition).
  hash_key  = coalesce(var.hash_key, "pk")
  range_key = coalesce(var.range_key, "sk")
  # Every function's metrics (outbox/metrics.py: EMF under OUTBOX_METRICS_NAMESPACE, dimension
  # Service = OUTBOX_SERVICE); alarms.tf alarms on the same namespace and dimension.
  metrics_service = coalesce(var.metrics_service, var.name)
  metrics_environment = {
    OUTBOX_METRICS_NAMESPACE = var.metrics_namespace
    OUTBOX_SERVICE           = local.metrics_service
  }
  # The consumer's handler: the caller's, else the outbox's consumer of the zip it runs from (a zip
  # built by `outbox package` holds the library, not this repository's worker/ entry points).
  consumer_handler = var.consumer_handler == "auto" ? (var.consumer_package == null ? "worker.consumer.handler" : "outbox.lambda_consumer.handler") : var.consumer_handler
  # The consumer's OUTBOX_DELIVERY (lambda.tf), only when the caller names its own delivery function.
  delivery_environment = var.delivery == null || var.delivery == "" ? {} : { OUTBOX_DELIVERY = var.delivery }

  # Handler paths and environment names exactly as outbox/settings.py and the handlers read them.
  functions = {
    api = {
      handler     = "worker.api.handler"
      description = "POST /messages and GET /messages/{id}: one TransactWriteItems per accepted message"
      environment = {
        OUTBOX_TABLE_NAME     = local.table_name
        OUTBOX_HASH_KEY       = local.hash_key
        OUTBOX_RANGE_KEY      = local.range_key
        OUTBOX_BUCKETS        = tostring(var.buckets)
        OUTBOX_RETENTION_DAYS = tostring(var.retention_days)
        # Every request names its caller (IAM or JWT): keys, ids and reads are scoped to it.
        OUTBOX_REQUIRE_PRINCIPAL = "true"
        LOG_LEVEL                = var.log_level
      }
    }
    worker = {
      handler     = "worker.handler.handler"
      description = "Relays outbox stream records to SQS, then flips each record PENDING -> QUEUED"
      environment = {
        OUTBOX_TABLE_NAME         = local.table_name
        OUTBOX_HASH_KEY           = local.hash_key
        OUTBOX_RANGE_KEY          = local.range_key
        OUTBOX_QUEUE_URL          = aws_sqs_queue.main.url
        OUTBOX_MAX_RELAY_ATTEMPTS = tostring(var.max_relay_attempts)
        OUTBOX_FLIP_CONCURRENCY   = tostring(var.flip_concurrency)
        # Entries older than this may have been relayed by the sweeper: sent only if still PENDING.
        OUTBOX_SWEEP_MIN_AGE_SECONDS = tostring(var.sweep_min_age_seconds)
        # After a stream loss: how far another writer's clock may be off (the group's order).
        OUTBOX_MAX_CLOCK_SKEW_MS = tostring(var.max_clock_skew_ms)
        # A record that ends (FAILED here, COMPLETED in the consumer) expires by the table's TTL.
        OUTBOX_RECORD_RETENTION_DAYS = tostring(var.record_retention_days)
        LOG_LEVEL                    = var.log_level
      }
    }
    consumer = {
      handler     = local.consumer_handler
      description = "Consumer: QUEUED -> PROCESSING -> COMPLETED or FAILED, delivering each message"
      environment = {
        OUTBOX_TABLE_NAME            = local.table_name
        OUTBOX_HASH_KEY              = local.hash_key
        OUTBOX_RANGE_KEY             = local.range_key
        OUTBOX_MAX_DELIVERY_ATTEMPTS = tostring(var.max_delivery_attempts)
        # The queue's redrive maxReceiveCount: on that receive the consumer ends a message FAILED
        # rather than let its copy reach the dead-letter queue.
        OUTBOX_MAX_RECEIVE_COUNT     = tostring(var.dlq_max_receive_count)
        OUTBOX_RECORD_RETENTION_DAYS = tostring(var.record_retention_days)
        LOG_LEVEL                    = var.log_level
      }
    }
    sweeper = {
      handler     = "worker.sweeper.handler"
      description = "On a schedule: relays every message PENDING past sweep_min_age_seconds, re-sends what is in flight with no copy left"
      environment = {
        OUTBOX_TABLE_NAME            = local.table_name
        OUTBOX_HASH_KEY              = local.hash_key
        OUTBOX_RANGE_KEY             = local.range_key
        OUTBOX_QUEUE_URL             = aws_sqs_queue.main.url
        OUTBOX_SWEEP_MIN_AGE_SECONDS = tostring(var.sweep_min_age_seconds)
        OUTBOX_MAX_RELAY_ATTEMPTS    = tostring(var.max_relay_attempts)
        OUTBOX_FLIP_CONCURRENCY      = tostring(var.flip_concurrency)
        # The main queue's own figures: how long a copy can still be somewhere. A message in flight
        # past them with no copy left is re-sent (MessagesResent, alarmed).
        OUTBOX_QUEUE_RETENTION_SECONDS  = tostring(aws_sqs_queue.main.message_retention_seconds)
        OUTBOX_QUEUE_VISIBILITY_SECONDS = tostring(aws_sqs_queue.main.visibility_timeout_seconds)
        # Used only while the table keeps no bucket count of its own: every bucket the API writes.
        OUTBOX_BUCKETS               = tostring(var.buckets)
        OUTBOX_RECORD_RETENTION_DAYS = tostring(var.record_retention_days)
        LOG_LEVEL                    = var.log_level
      }
    }
    # A copy reaches the dead-letter queue only when the consumer's last receive could not end its
    # message (a crash or timeout, status writes failing): this one ends the record FAILED.
    "dead-letter" = {
      handler     = "worker.dead_letter.handler"
      description = "Dead-letter queue: ends the record of every copy there FAILED with the reason"
      environment = {
        OUTBOX_TABLE_NAME = local.table_name
        OUTBOX_HASH_KEY   = local.hash_key
        OUTBOX_RANGE_KEY  = local.range_key
        # The main queue: only a copy SQS moved from it (DeadLetterQueueSourceArn) ends its record.
        OUTBOX_QUEUE_URL             = aws_sqs_queue.main.url
        OUTBOX_RECORD_RETENTION_DAYS = tostring(var.record_retention_days)
        LOG_LEVEL                    = var.log_level
      }
    }
  }
}
