output "api_url" {
  description = "Base URL of the HTTP API (POST /messages, GET /messages/{id})."
  value       = aws_apigatewayv2_stage.default.invoke_url
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
  description = "Function names by role: api, worker, consumer, sweeper."
  value       = { for key, function in aws_lambda_function.this : key => function.function_name }
}

output "role_names" {
  description = "Execution role names by function: attach what your own delivery code calls to the consumer's."
  value       = { for key, role in aws_iam_role.function : key => role.name }
}

output "kms_key_arn" {
  description = "The customer-managed key (an operator running replay needs Decrypt and GenerateDataKey on it)."
  value       = aws_kms_key.this.arn
}

output "environment" {
  description = "The environment `outbox replay` needs against this deployment."
  value = {
    OUTBOX_TABLE_NAME = local.table_name
    OUTBOX_QUEUE_URL  = aws_sqs_queue.main.url
    OUTBOX_BUCKETS    = tostring(var.buckets)
  }
}

output "table_policy_documents" {
  description = "The module's resource policies of the table and of its stream (keys table, stream): each denies every request without TLS. Attached to the module's own table, and to an existing one with manage_existing_table_policy; otherwise merge them into your own (aws_iam_policy_document source_policy_documents)."
  value       = { for key, document in data.aws_iam_policy_document.table_policy : key => document.json }
}
