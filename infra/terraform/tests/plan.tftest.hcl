# Plans of the module with the real AWS provider and no AWS call: fake credentials, nothing looked
# up (skip_*), and the one data source that would call AWS (STS GetCallerIdentity) overridden.
# The policy documents, the partition and the region are the provider's own, computed offline.
# `terraform test` in infra/terraform; tests/infra/test_terraform_cli.py runs it from a temp copy.

provider "aws" {
  region                      = "eu-west-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
}

# The id secret: its ARN (what the API's environment holds) is known before the apply.
override_resource {
  target          = aws_secretsmanager_secret.id
  override_during = plan
  values = {
    id  = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:outbox-id-secret-Ab12Cd"
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:outbox-id-secret-Ab12Cd"
  }
}

# The main queue's URL known at plan time, so the environments that name it (worker, sweeper,
# dead-letter) are known too: the provider plans a map holding an unknown value as unknown whole.
override_resource {
  target          = aws_sqs_queue.main
  override_during = plan
  values = {
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/outbox"
    arn = "arn:aws:sqs:eu-west-1:123456789012:outbox"
  }
}

override_data {
  target = data.aws_caller_identity.current
  values = {
    account_id = "123456789012"
    arn        = "arn:aws:iam::123456789012:user/test"
    user_id    = "AIDATEST"
  }
}

variables {
  lambda_package  = "tests/empty.zip"
  alarm_topic_arn = "arn:aws:sns:eu-west-1:123456789012:alarms"
}

run "defaults_deploy_everything_on_the_modules_table" {
  command = plan

  assert {
    condition     = keys(aws_lambda_function.this) == ["api", "consumer", "dead-letter", "sweeper", "worker"]
    error_message = "the defaults deploy the api, worker, consumer, sweeper and dead-letter functions"
  }
  assert {
    condition     = length(aws_apigatewayv2_api.this) == 1 && length(aws_apigatewayv2_route.this) == 2 && length(aws_apigatewayv2_stage.default) == 1
    error_message = "the defaults deploy the HTTP API with its two routes and its stage"
  }
  assert {
    condition     = aws_dynamodb_table.this[0].hash_key == "pk" && aws_dynamodb_table.this[0].range_key == "sk"
    error_message = "the module's own table has the keys pk and sk when none are given"
  }
  assert {
    condition     = alltrue([for function in aws_lambda_function.this : function.environment[0].variables.OUTBOX_HASH_KEY == "pk" && function.environment[0].variables.OUTBOX_RANGE_KEY == "sk"])
    error_message = "every function gets the module table's key names"
  }
  assert {
    condition     = [for filter in aws_lambda_event_source_mapping.stream.filter_criteria[0].filter : jsondecode(filter.pattern).dynamodb.Keys.pk.S[0].prefix] == ["OUTBOX#"]
    error_message = "the stream filter matches outbox entries by the table's partition key"
  }
  assert {
    condition     = output.environment.OUTBOX_HASH_KEY == "pk" && output.environment.OUTBOX_RANGE_KEY == "sk" && output.environment.AWS_REGION == "eu-west-1" && output.environment.OUTBOX_TABLE_NAME == "outbox"
    error_message = "output environment names the table, its keys and the region"
  }
  assert {
    condition     = aws_lambda_function.this["consumer"].memory_size == 512 && aws_lambda_function.this["dead-letter"].memory_size == 256 && aws_lambda_function.this["sweeper"].reserved_concurrent_executions == 1
    error_message = "without functions, each function has the module's default size"
  }
}

# Issue #26: the EMF namespace and Service dimension every function writes under, and the alarms on them.
run "the_metrics_namespace_and_service_reach_every_function_and_the_alarms" {
  command = plan

  variables {
    name              = "orders"
    metrics_namespace = "Shop/Outbox"
    metrics_service   = "orders-eu"
  }

  assert {
    condition     = alltrue([for name in ["api", "consumer", "dead-letter"] : aws_lambda_function.this[name].environment[0].variables.OUTBOX_METRICS_NAMESPACE == "Shop/Outbox" && aws_lambda_function.this[name].environment[0].variables.OUTBOX_SERVICE == "orders-eu"])
    error_message = "every function writes its metrics under the namespace and service given"
  }
  assert {
    condition     = alltrue([for alarm in aws_cloudwatch_metric_alarm.count : alarm.namespace == "Shop/Outbox" && alarm.dimensions["Service"] == "orders-eu" && length(alarm.dimensions) == 1]) && aws_cloudwatch_metric_alarm.oldest_pending.namespace == "Shop/Outbox" && aws_cloudwatch_metric_alarm.oldest_pending.dimensions["Service"] == "orders-eu"
    error_message = "the alarms on the functions' own metrics follow the namespace and service"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.iterator_age.namespace == "AWS/Lambda"
    error_message = "alarms on AWS's own metrics keep AWS's namespaces"
  }
}

run "the_metrics_default_to_the_codes_namespace_and_the_modules_name" {
  command = plan

  variables {
    name = "orders"
  }

  assert {
    condition     = aws_lambda_function.this["consumer"].environment[0].variables.OUTBOX_METRICS_NAMESPACE == "Outbox" && aws_lambda_function.this["consumer"].environment[0].variables.OUTBOX_SERVICE == "orders"
    error_message = "without metrics_namespace and metrics_service: Outbox, and the module's name"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.count["messages-failed"].namespace == "Outbox" && aws_cloudwatch_metric_alarm.count["messages-failed"].dimensions["Service"] == "orders"
    error_message = "the alarms follow the defaults too"
  }
}

run "a_metrics_namespace_of_aws_is_refused" {
  command = plan

  variables {
    metrics_namespace = "AWS/Lambda"
  }

  expect_failures = [var.metrics_namespace]
}

run "a_partial_functions_map_changes_only_what_it_names" {
  command = plan

  variables {
    functions = {
      consumer      = { memory_size = 1024 }
      "dead-letter" = { timeout = 60 }
    }
  }

  assert {
    condition     = aws_lambda_function.this["consumer"].memory_size == 1024 && aws_lambda_function.this["consumer"].timeout == 30 && aws_lambda_function.this["consumer"].reserved_concurrent_executions == 20
    error_message = "consumer: the memory given, the default timeout and concurrency"
  }
  assert {
    condition     = aws_lambda_function.this["dead-letter"].timeout == 60 && aws_lambda_function.this["dead-letter"].memory_size == 256
    error_message = "dead-letter: the timeout given, the default memory"
  }
  assert {
    condition     = aws_lambda_function.this["worker"].memory_size == 512 && aws_lambda_function.this["api"].timeout == 10
    error_message = "functions not named keep every default"
  }
  assert {
    condition     = aws_sqs_queue.main.visibility_timeout_seconds == 180 && aws_sqs_queue.dlq.visibility_timeout_seconds == 360
    error_message = "the queues' visibility timeouts follow the merged timeouts (six times the function's)"
  }
}

run "a_full_functions_map_of_0_1_0_still_fits" {
  command = plan

  variables {
    functions = {
      api      = { memory_size = 256, timeout = 5, reserved_concurrency = 10 }
      worker   = { memory_size = 256, timeout = 60, reserved_concurrency = 5 }
      consumer = { memory_size = 256, timeout = 20, reserved_concurrency = 5 }
      sweeper  = { memory_size = 256, timeout = 120, reserved_concurrency = 1 }
    }
  }

  assert {
    condition     = aws_lambda_function.this["api"].reserved_concurrent_executions == 10 && aws_lambda_function.this["sweeper"].timeout == 120 && aws_apigatewayv2_integration.api[0].timeout_milliseconds == 6000
    error_message = "every setting of a full map is applied"
  }
}

run "without_the_api" {
  command = plan

  variables {
    create_api = false
  }

  assert {
    condition     = length(aws_apigatewayv2_api.this) + length(aws_apigatewayv2_stage.default) + length(aws_apigatewayv2_integration.api) + length(aws_apigatewayv2_route.this) + length(aws_apigatewayv2_authorizer.jwt) + length(aws_lambda_permission.api) == 0
    error_message = "create_api = false deploys no HTTP API"
  }
  assert {
    condition     = length(aws_cloudwatch_log_group.api_access) == 0 && !contains(keys(aws_cloudwatch_log_group.function), "api")
    error_message = "create_api = false leaves no API log group"
  }
  assert {
    condition     = !contains(keys(aws_lambda_function.this), "api") && !contains(keys(aws_iam_role.function), "api") && !contains(keys(aws_iam_role_policy.function), "api") && !contains(keys(aws_cloudwatch_metric_alarm.function_errors), "api")
    error_message = "create_api = false deploys no API function, role, policy or alarm"
  }
  assert {
    condition     = keys(aws_lambda_function.this) == ["consumer", "dead-letter", "sweeper", "worker"]
    error_message = "the outbox's own functions are all there"
  }
  assert {
    condition     = output.api_url == null && !contains(keys(output.function_names), "api") && !contains(keys(output.role_names), "api")
    error_message = "outputs naming the API are null (api_url) or leave it out"
  }
}

run "fifo_queues" {
  command = plan

  variables {
    fifo = true
  }

  assert {
    condition     = aws_sqs_queue.main.name == "outbox.fifo" && aws_sqs_queue.main.fifo_queue && aws_sqs_queue.dlq.name == "outbox-dlq.fifo" && aws_sqs_queue.dlq.fifo_queue
    error_message = "fifo = true: the main queue and its dead-letter queue are FIFO (a FIFO queue's DLQ must be FIFO)"
  }
  assert {
    condition     = !aws_sqs_queue.main.content_based_deduplication
    error_message = "the relay sets its own deduplication ids: no content-based deduplication"
  }
  assert {
    condition     = aws_sqs_queue.on_failure.name == "outbox-stream-failures" && !aws_sqs_queue.on_failure.fifo_queue
    error_message = "the stream's on-failure queue stays standard (Lambda's on-failure destination cannot be FIFO)"
  }
  assert {
    condition     = aws_lambda_event_source_mapping.queue.maximum_batching_window_in_seconds == null
    error_message = "a FIFO queue's mapping takes no batching window"
  }
}

# Each variable's validation, a failure of each expected (other variables valid).
run "name_key_names_and_log_retention_are_checked" {
  command = plan

  variables {
    name               = "9-starts-with-a-digit"
    hash_key           = ""
    log_retention_days = 10
  }

  expect_failures = [var.name, var.hash_key, var.log_retention_days]
}

run "functions_takes_only_known_keys" {
  command = plan

  variables {
    functions = { relay = { memory_size = 1024 } }
  }

  expect_failures = [var.functions]
}

run "functions_sizes_are_lambdas" {
  command = plan

  variables {
    functions = { worker = { memory_size = 64 } }
  }

  expect_failures = [var.functions]
}

run "the_sweeper_never_runs_twice_at_once" {
  command = plan

  variables {
    functions = { sweeper = { reserved_concurrency = 2 } }
  }

  expect_failures = [var.functions]
}

run "the_dead_letter_function_keeps_two_pollers" {
  command = plan

  variables {
    functions = { "dead-letter" = { reserved_concurrency = 0 } }
  }

  expect_failures = [var.functions]
}

# The preconditions, each on its own resource: the DLQ takes copies only after the consumer's
# attempts, the oldest-PENDING alarm sits above the sweeper's age, JWT needs issuer and audience.
run "settings_that_contradict_each_other_stop_the_plan" {
  command = plan

  variables {
    dlq_max_receive_count        = 5
    max_delivery_attempts        = 5
    oldest_pending_alarm_seconds = 300
    authorization                = "JWT"
  }

  expect_failures = [aws_sqs_queue.main, aws_cloudwatch_metric_alarm.oldest_pending, aws_apigatewayv2_authorizer.jwt]
}

# SnapStart: versions published behind the alias "live", the handlers set up at init, and every
# mapping and the API invoking the alias (its ARNs overridden: unknown until apply otherwise).
run "snap_start_publishes_versions_and_invokes_them_through_an_alias" {
  command = plan

  variables {
    snap_start     = true
    lambda_runtime = "python3.12"
  }

  override_resource {
    target          = aws_lambda_alias.live
    override_during = plan
    values = {
      arn        = "arn:aws:lambda:eu-west-1:123456789012:function:outbox-x:live"
      invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:outbox-x:live/invocations"
    }
  }

  assert {
    condition     = keys(aws_lambda_alias.live) == ["api", "consumer", "dead-letter", "worker"] && alltrue([for alias in aws_lambda_alias.live : alias.name == "live"])
    error_message = "every function but the sweeper gets the alias live"
  }
  assert {
    condition     = alltrue([for name in ["api", "consumer", "dead-letter", "worker"] : aws_lambda_function.this[name].publish && aws_lambda_function.this[name].snap_start[0].apply_on == "PublishedVersions"])
    error_message = "SnapStart on published versions of the api, worker, consumer and dead-letter functions"
  }
  assert {
    condition     = !aws_lambda_function.this["sweeper"].publish && length(aws_lambda_function.this["sweeper"].snap_start) == 0
    error_message = "the sweeper stays as it is"
  }
  assert {
    condition     = alltrue([for name in ["api", "consumer", "dead-letter"] : aws_lambda_function.this[name].environment[0].variables.OUTBOX_EAGER_INIT == "true"])
    error_message = "the functions under SnapStart do their set-up at init"
  }
  assert {
    condition     = aws_lambda_event_source_mapping.stream.function_name == aws_lambda_alias.live["worker"].arn && aws_lambda_event_source_mapping.queue.function_name == aws_lambda_alias.live["consumer"].arn && aws_lambda_event_source_mapping.dead_letter.function_name == aws_lambda_alias.live["dead-letter"].arn
    error_message = "the mappings invoke the alias"
  }
  assert {
    condition     = aws_apigatewayv2_integration.api[0].integration_uri == aws_lambda_alias.live["api"].invoke_arn && alltrue([for permission in aws_lambda_permission.api : permission.qualifier == "live"])
    error_message = "the API invokes the alias, and may"
  }
}

run "without_snap_start_nothing_is_published" {
  command = plan

  assert {
    condition     = length(aws_lambda_alias.live) == 0 && alltrue([for function in aws_lambda_function.this : !function.publish && length(function.snap_start) == 0])
    error_message = "by default no version, no alias, no SnapStart"
  }
  assert {
    condition     = alltrue([for name in ["api", "consumer", "dead-letter"] : !contains(keys(aws_lambda_function.this[name].environment[0].variables), "OUTBOX_EAGER_INIT")])
    error_message = "by default the handlers set up at their first request"
  }
}

run "snap_start_needs_python_3_12" {
  command = plan

  variables {
    snap_start = true
  }

  expect_failures = [aws_lambda_function.this]
}

# The capacity check: the defaults carry 100 messages a second, not 10,000.
run "the_defaults_carry_100_messages_a_second" {
  command = plan

  variables {
    expected_messages_per_second = 100
  }
}

run "a_rate_the_configuration_cannot_carry_is_warned_about" {
  command = plan

  variables {
    expected_messages_per_second = 10000
  }

  expect_failures = [check.capacity]
}

run "the_settings_docs_capacity_gives_for_10000_carry_it" {
  command = plan

  variables {
    expected_messages_per_second  = 10000
    buckets                       = 64
    stream_parallelization_factor = 1
    consumer_maximum_concurrency  = 290
    functions = {
      worker   = { reserved_concurrency = 40 }
      consumer = { reserved_concurrency = 290 }
    }
  }
}
