# The module attached to a caller's table (create_table = false), and examples/existing-table
# planned whole: with the real AWS provider and no AWS call, as in plan.tftest.hcl.

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

override_data {
  target = data.aws_caller_identity.current
  values = {
    account_id = "123456789012"
    arn        = "arn:aws:iam::123456789012:user/test"
    user_id    = "AIDATEST"
  }
}

# The queue URL known at plan time, so the worker's and sweeper's environments are known too (the
# provider plans a map holding an unknown value as unknown as a whole).
override_resource {
  target          = aws_sqs_queue.main
  override_during = plan
  values = {
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders-outbox"
    arn = "arn:aws:sqs:eu-west-1:123456789012:orders-outbox"
  }
}

variables {
  lambda_package  = "tests/empty.zip"
  alarm_topic_arn = "arn:aws:sns:eu-west-1:123456789012:alarms"
  name            = "orders-outbox"
}

run "attached_to_a_pk_sk_table" {
  command = plan

  variables {
    create_table      = false
    table_name        = "orders"
    table_stream_arn  = "arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/2024-01-01T00:00:00.000"
    table_kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/orders"
    hash_key          = "PK"
    range_key         = "SK"
    delivery          = "orders.consumer:deliver"
  }

  assert {
    condition     = length(aws_dynamodb_table.this) == 0 && length(aws_dynamodb_resource_policy.this) == 0
    error_message = "no table of the module's, and the caller's resource policies are left alone"
  }
  assert {
    condition     = alltrue([for function in aws_lambda_function.this : function.environment[0].variables.OUTBOX_TABLE_NAME == "orders" && function.environment[0].variables.OUTBOX_HASH_KEY == "PK" && function.environment[0].variables.OUTBOX_RANGE_KEY == "SK"])
    error_message = "every function gets the caller's table and its key names"
  }
  assert {
    condition     = aws_lambda_function.this["consumer"].environment[0].variables.OUTBOX_DELIVERY == "orders.consumer:deliver" && !contains(keys(aws_lambda_function.this["worker"].environment[0].variables), "OUTBOX_DELIVERY")
    error_message = "the consumer alone gets the caller's delivery function"
  }
  assert {
    condition     = [for filter in aws_lambda_event_source_mapping.stream.filter_criteria[0].filter : keys(jsondecode(filter.pattern).dynamodb.Keys)] == [["PK"]]
    error_message = "the stream filter matches the caller's partition key"
  }
  assert {
    condition     = aws_lambda_event_source_mapping.stream.event_source_arn == "arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/2024-01-01T00:00:00.000"
    error_message = "the worker reads the caller's stream"
  }
  assert {
    condition     = output.environment == { AWS_REGION = "eu-west-1", OUTBOX_TABLE_NAME = "orders", OUTBOX_HASH_KEY = "PK", OUTBOX_RANGE_KEY = "SK", OUTBOX_QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders-outbox", OUTBOX_BUCKETS = "16", OUTBOX_RETENTION_DAYS = "7", OUTBOX_RECORD_RETENTION_DAYS = "30", OUTBOX_MAX_RELAY_ATTEMPTS = "5", OUTBOX_FLIP_CONCURRENCY = "10", OUTBOX_SWEEP_MIN_AGE_SECONDS = "300", OUTBOX_QUEUE_RETENTION_SECONDS = "345600", OUTBOX_QUEUE_VISIBILITY_SECONDS = "180", OUTBOX_METRICS_NAMESPACE = "Outbox", OUTBOX_SERVICE = "orders-outbox" }
    error_message = "output environment points replay and sweep at the caller's table with its key names"
  }
  assert {
    condition     = alltrue([for name, value in output.environment : value == aws_lambda_function.this["sweeper"].environment[0].variables[name] if name != "AWS_REGION" && name != "OUTBOX_RETENTION_DAYS"])
    error_message = "output environment holds the sweeper's own settings"
  }
}

# Issue #25, as SQS receives it: the queues' policies (rendered by the provider at plan time: they
# depend on names only) limit who takes copies, and only SQS's redrive from the main queue fills the
# dead-letter queue. The roles' policies name the key and the log groups, so they render only at
# apply: tests/infra/test_terraform_apply.py checks them as applied, and test_iam_calls.py against
# the calls each handler makes.
run "the_queues_on_the_callers_table" {
  command = plan

  variables {
    create_table      = false
    table_name        = "orders"
    table_stream_arn  = "arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/2024-01-01T00:00:00.000"
    table_kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/orders"
    hash_key          = "PK"
    range_key         = "SK"
  }

  assert {
    condition     = jsondecode(aws_sqs_queue.dlq.redrive_allow_policy) == { redrivePermission = "byQueue", sourceQueueArns = ["arn:aws:sqs:eu-west-1:123456789012:orders-outbox"] }
    error_message = "only the main queue may name the dead-letter queue as its own"
  }
  assert {
    condition = anytrue([
      for statement in jsondecode(aws_sqs_queue.dlq.policy).Statement :
      statement.Effect == "Deny" && statement.Action == "sqs:SendMessage" && statement.Principal == "*" && try(statement.Condition, null) == { Bool = { "aws:PrincipalIsAWSService" = "false" } }
    ])
    error_message = "no principal sends to the dead-letter queue (SQS's redrive is not one)"
  }
  assert {
    condition = alltrue([
      for queue, role in { main = "consumer", dlq = "dead-letter" } : anytrue([
        for statement in jsondecode(queue == "main" ? aws_sqs_queue.main.policy : aws_sqs_queue.dlq.policy).Statement :
        statement.Effect == "Deny" && toset(flatten([statement.Action])) == toset(["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:ReceiveMessage"]) && try(statement.Condition, null) == { ArnNotEquals = { "aws:PrincipalArn" = "arn:aws:iam::123456789012:role/orders-outbox-${role}" } }
      ])
    ])
    error_message = "each queue's copies are received, deleted and delayed by its own function's role alone"
  }
  assert {
    condition     = alltrue([for queue in [aws_sqs_queue.main, aws_sqs_queue.dlq] : anytrue([for statement in jsondecode(queue.policy).Statement : statement.Effect == "Deny" && statement.Action == "sqs:PurgeQueue" && try(statement.Condition, null) == null])])
    error_message = "nobody purges the main queue or the dead-letter queue"
  }
  assert {
    condition     = alltrue([for queue in [aws_sqs_queue.main, aws_sqs_queue.dlq, aws_sqs_queue.on_failure] : alltrue([for action in ["sqs:DeleteQueue", "sqs:TagQueue", "sqs:AddPermission", "sqs:StartMessageMoveTask"] : anytrue([for statement in jsondecode(queue.policy).Statement : statement.Sid == "DenyWithoutTls" && contains(flatten([statement.Action]), action)])])])
    error_message = "every queue's TLS deny covers deletion, tagging, permissions and message move tasks"
  }
  assert {
    condition     = aws_lambda_function.this["dead-letter"].environment[0].variables.OUTBOX_QUEUE_URL == "https://sqs.eu-west-1.amazonaws.com/123456789012/orders-outbox"
    error_message = "the dead-letter function knows the main queue, whose moved copies alone end records"
  }
}

run "an_existing_tables_key_names_are_required" {
  command = plan

  variables {
    create_table     = false
    table_name       = "orders"
    table_stream_arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/2024-01-01T00:00:00.000"
  }

  expect_failures = [aws_kms_key.this]
}

# The consumer's handler: the outbox's consumer of the zip it runs from, unless the caller names its own.
run "a_consumer_package_runs_the_library_consumer" {
  command = plan

  variables {
    consumer_package = "tests/empty.zip"
    delivery         = "orders.consumer:deliver"
  }

  assert {
    condition     = aws_lambda_function.this["consumer"].handler == "outbox.lambda_consumer.handler" && aws_lambda_function.this["worker"].handler == "worker.handler.handler"
    error_message = "a zip of the caller's (built by `outbox package`, no worker/ in it) runs the library's consumer"
  }
}

run "the_callers_own_handler_is_kept" {
  command = plan

  variables {
    consumer_package = "tests/empty.zip"
    consumer_handler = "orders.consumer.handler"
  }

  assert {
    condition     = aws_lambda_function.this["consumer"].handler == "orders.consumer.handler"
    error_message = "consumer_handler, when set, is the consumer's handler"
  }
}

run "the_modules_own_zip_runs_its_consumer" {
  command = plan

  assert {
    condition     = aws_lambda_function.this["consumer"].handler == "worker.consumer.handler"
    error_message = "without a consumer_package the consumer runs from lambda_package's worker/"
  }
}

# The library's consumer calls the function `delivery` names: without one, refused at plan.
run "a_consumer_package_without_a_delivery_or_handler_is_refused" {
  command = plan

  variables {
    consumer_package = "tests/empty.zip"
  }

  expect_failures = [aws_lambda_function.this]
}

# examples/existing-table as a user applies it: its own PK/SK table and key, the module attached.
run "the_existing_table_example" {
  command = plan

  module {
    source = "./examples/existing-table"
  }

  variables {
    name             = "orders"
    consumer_package = "tests/empty.zip"
  }

  override_data {
    target = module.outbox.data.aws_caller_identity.current
    values = { account_id = "123456789012" }
  }

  assert {
    condition     = module.outbox.environment.OUTBOX_HASH_KEY == "PK" && module.outbox.environment.OUTBOX_RANGE_KEY == "SK" && module.outbox.environment.OUTBOX_TABLE_NAME == "orders"
    error_message = "the example's environment output names its table and key names"
  }
  assert {
    condition     = aws_dynamodb_table.orders.stream_view_type == "NEW_AND_OLD_IMAGES" && [for index in aws_dynamodb_table.orders.global_secondary_index : index.name] == ["outbox-records"]
    error_message = "the example's table has the stream and the record index the module needs"
  }
}
