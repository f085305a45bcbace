output "api_url" {
  description = "Base URL of the HTTP API (POST /messages, GET /messages/{id}); null with create_api = false."
  value       = one(aws_apigatewayv2_stage.default[*].invoke_url)
}

output "table_name" {
  description = "The DynamoDB table (created, or the caller's): OUTBOX_TABLE_NAME for `outbox replay`."
  value       = local.table_name
}

output "table_stream_arn" {
  description = "The table's stream (the stream mapping's source)."
  value       = local.stream_arn
}

output "queue_url" {
  description = "The main queue: OUTBOX_QUEUE_URL for `outbox replay`."
  value       = aws_sqs_queue.main.url
}

output "dlq_url" {
  description = "The main queue's dead-letter queue."
  value       = aws_sqs_queue.dlq.url
}

output "on_failure_queue_url" {
  description = "Where the stream mapping reports batches it gave up on."
  value       = aws_sqs_queue.on_failure.url
}

output "function_names" {
  description = "Function names by role: api (only with create_api), worker, consumer, sweeper, dead-letter."
  value       = { for key, function in aws_lambda_function.this : key => function.function_name }
}

output "role_names" {
  description = "Execution role names by function (api only with create_api): attach what your own delivery code calls to the consumer's."
  value       = { for key, role in aws_iam_role.function : key => role.name }
}

output "kms_key_arn" {
  description = "The customer-managed key (an operator running replay needs Decrypt and GenerateDataKey on it)."
  value       = aws_kms_key.this.arn
}

# What `outbox replay` and `outbox sweep` read (outbox/cli.py, Settings.from_env): the sweeper's own
# settings, so a sweep by hand runs as the deployed one; the API's writer settings, so a service of
# yours writing with Outbox.from_settings(Settings.from_env()) writes as the API does; and the region.
# tests/infra/test_wiring.py holds it to the names the commands read and the functions' values.
output "environment" {
  description = "The environment `outbox replay`, `outbox sweep` and Outbox.from_settings need against this deployment: table, key names, queue, buckets, retention, relay and sweep settings (the queue's retention and visibility timeout included), metrics namespace and service, region."
  value = {
    AWS_REGION                   = local.region
    OUTBOX_TABLE_NAME            = local.table_name
    OUTBOX_HASH_KEY              = local.hash_key
    OUTBOX_RANGE_KEY             = local.range_key
    OUTBOX_QUEUE_URL             = aws_sqs_queue.main.url
    OUTBOX_BUCKETS               = tostring(var.buckets)
    OUTBOX_RETENTION_DAYS        = tostring(var.retention_days)
    OUTBOX_RECORD_RETENTION_DAYS = tostring(var.record_retention_days)
    OUTBOX_MAX_RELAY_ATTEMPTS    = tostring(var.max_relay_attempts)
    OUTBOX_FLIP_CONCURRENCY      = tostring(var.flip_concurrency)
    OUTBOX_SWEEP_MIN_AGE_SECONDS = tostring(var.sweep_min_age_seconds)
    # What tells the sweeper a message in flight has no copy left: the main queue's own figures.
    OUTBOX_QUEUE_RETENTION_SECONDS  = tostring(aws_sqs_queue.main.message_retention_seconds)
    OUTBOX_QUEUE_VISIBILITY_SECONDS = tostring(aws_sqs_queue.main.visibility_timeout_seconds)
    # A sweep by hand counts where the deployed functions do (the alarms' namespace and dimension).
    OUTBOX_METRICS_NAMESPACE = var.metrics_namespace
    OUTBOX_SERVICE           = local.metrics_service
  }
}

output "caller_policy_document" {
  description = "IAM policy (JSON) for your own service writing with the outbox library (Outbox.message, transact_write, get) on this table: the record and outbox entry puts of its transaction, the record and bucket-count reads, the id secret, the keys. Attach it to your service's role beside its grants on its own items; docs/security.md explains each statement."
  value       = data.aws_iam_policy_document.caller.json
}

output "table_policy_documents" {
  description = "The module's resource policies of the table and of its stream (keys table, stream): each denies every request without TLS. Attached to the module's own table, and to an existing one with manage_existing_table_policy; otherwise merge them into your own (aws_iam_policy_document source_policy_documents)."
  value       = { for key, document in data.aws_iam_policy_document.table_policy : key => document.json }
}
