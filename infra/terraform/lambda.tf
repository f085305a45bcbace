resource "aws_cloudwatch_log_group" "function" {
  for_each = local.deployed_functions

  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  for_each = local.deployed_functions
  # checkov:skip=CKV_AWS_116:API Gateway and the event source mappings invoke api, worker, consumer and dead-letter synchronously (their failures go to the stream on-failure queue, the SQS DLQ, and back to the DLQ); the sweeper's scheduled events carry nothing, a failed sweep is repeated by the next one and alarmed by its errors, so a DLQ would hold only empty events.
  # checkov:skip=CKV_AWS_117:The functions reach only AWS APIs; a VPC would add NAT or endpoints and nothing to isolate.
  # checkov:skip=CKV_AWS_272:make package builds unsigned zips; add an aws_signer profile and code_signing_config_arn where signing is policy.

  function_name                  = "${var.name}-${each.key}"
  description                    = each.value.description
  role                           = aws_iam_role.function[each.key].arn
  handler                        = each.value.handler
  runtime                        = var.lambda_runtime
  architectures                  = ["arm64"]
  filename                       = local.function_packages[each.key]
  source_code_hash               = filebase64sha256(local.function_packages[each.key])
  memory_size                    = local.function_sizes[each.key].memory_size
  timeout                        = local.function_sizes[each.key].timeout
  reserved_concurrent_executions = local.function_sizes[each.key].reserved_concurrency
  kms_key_arn                    = aws_kms_key.this.arn
  # SnapStart snapshots published versions only.
  publish = contains(local.snap_start_functions, each.key)

  dynamic "snap_start" {
    for_each = contains(local.snap_start_functions, each.key) ? ["PublishedVersions"] : []
    content {
      apply_on = snap_start.value
    }
  }

  environment {
    variables = merge(
      each.value.environment,
      local.metrics_environment,
      each.key == "consumer" ? local.delivery_environment : {},
      each.key == "api" ? local.api_identity_environment : {},
      contains(local.snap_start_functions, each.key) ? local.eager_init_environment : {},
    )
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.function[each.key].name
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.function, aws_cloudwatch_log_group.function]

  lifecycle {
    precondition {
      condition     = !var.snap_start || tonumber(regex("^python3\\.(\\d+)$", var.lambda_runtime)[0]) >= 12
      error_message = "snap_start needs lambda_runtime python3.12 or newer (Lambda SnapStart for Python), and a package built for that Python (pyproject.toml [tool.outbox.lambda-package] python-version)."
    }
    precondition {
      condition     = each.key != "consumer" || local.consumer_handler != "outbox.lambda_consumer.handler" || length(local.delivery_environment) > 0
      error_message = "A consumer_package without a consumer_handler runs outbox.lambda_consumer.handler, which calls the function `delivery` names: set delivery (package.module:function), or consumer_handler to your own make_handler module's handler."
    }
  }
}

# SnapStart runs published versions: each deploy publishes one, and this alias follows it. The
# mappings and the API invoke the alias (local.invoke_targets), so they always reach a snapshot.
resource "aws_lambda_alias" "live" {
  for_each = local.snap_start_functions

  name             = "live"
  description      = "The latest published version (SnapStart)"
  function_name    = aws_lambda_function.this[each.key].function_name
  function_version = aws_lambda_function.this[each.key].version
}

# The stream mapping: only INSERTs of outbox entries (the module's filter template, for the table's
# partition key name; worker/stream_filter.json.tftpl is the copy the local runner reads), partial
# batch responses, bisect on error, finite retries and record age, then the on-failure queue.
resource "aws_lambda_event_source_mapping" "stream" {
  function_name                      = local.invoke_targets["worker"]
  event_source_arn                   = local.stream_arn
  starting_position                  = "TRIM_HORIZON"
  batch_size                         = var.stream_batch_size
  maximum_batching_window_in_seconds = var.stream_batching_window_seconds
  parallelization_factor             = var.stream_parallelization_factor
  bisect_batch_on_function_error     = true
  maximum_retry_attempts             = var.stream_maximum_retry_attempts
  maximum_record_age_in_seconds      = var.stream_maximum_record_age_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  filter_criteria {
    filter {
      pattern = jsonencode(jsondecode(templatefile("${path.module}/stream_filter.json.tftpl", { hash_key = local.hash_key })))
    }
  }

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.on_failure.arn
    }
  }
}

resource "aws_lambda_event_source_mapping" "queue" {
  function_name           = local.invoke_targets["consumer"]
  event_source_arn        = aws_sqs_queue.main.arn
  batch_size              = var.consumer_batch_size
  function_response_types = ["ReportBatchItemFailures"]
  # FIFO queues take no batching window.
  maximum_batching_window_in_seconds = var.fifo ? null : var.consumer_batching_window_seconds

  scaling_config {
    maximum_concurrency = var.consumer_maximum_concurrency
  }
}

# The dead-letter queue's mapping: whatever the consumer's last receive could not end (a crash, a
# timeout, status writes failing) is ended here; a copy it cannot settle yet comes back to it.
resource "aws_lambda_event_source_mapping" "dead_letter" {
  function_name           = local.invoke_targets["dead-letter"]
  event_source_arn        = aws_sqs_queue.dlq.arn
  batch_size              = 10
  function_response_types = ["ReportBatchItemFailures"]

  # Lambda's SQS pollers start at five concurrent batches; held to the function's reserved
  # concurrency (at least 2, variables.tf), so copies are not throttled back into the queue.
  scaling_config {
    maximum_concurrency = local.function_sizes["dead-letter"].reserved_concurrency
  }
}
