locals {
  alarm_actions = [var.alarm_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  alarm_name          = "${var.name}-stream-iterator-age"
  alarm_description   = "The worker is falling behind the table's stream (records may expire after 24 h): check worker errors and throttles."
  namespace           = "AWS/Lambda"
  metric_name         = "IteratorAge"
  dimensions          = { FunctionName = aws_lambda_function.this["worker"].function_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.iterator_age_alarm_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "queue_depth" {
  for_each = {
    dlq        = aws_sqs_queue.dlq.name
    on-failure = aws_sqs_queue.on_failure.name
  }

  alarm_name          = "${var.name}-${each.key}-not-empty"
  alarm_description   = each.key == "dlq" ? "Copies stay in the dead-letter queue: the ${var.name}-dead-letter function, which ends each one's record FAILED, is failing or not running (check its errors and its event source mapping)." : "The worker gave up on stream batches: run `outbox replay` for the window they name."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each = local.deployed_functions

  alarm_name          = "${var.name}-${each.key}-errors"
  alarm_description   = each.key == "sweeper" ? "The sweeper is failing: messages left PENDING wait until a sweep succeeds. Its log names the cause (an existing table without the outbox-records index, permissions, SQS)." : "The ${each.key} function is failing invocations."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.this[each.key].function_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# The functions' own metrics, written as EMF (outbox/metrics.py) under the namespace and Service
# dimension every function is given (main.tf: local.metrics_environment; tests/infra checks the
# metric names against its constants).
locals {
  metrics_namespace  = var.metrics_namespace
  metrics_dimensions = { Service = local.metrics_service }
  # Counts that must stay at zero: any message in them is one an operator has to look at.
  count_alarms = {
    messages-quarantined = {
      metric      = "MessagesQuarantined"
      description = "Messages were marked FAILED without being sent (SQS refused them, too large, malformed entry): the worker's and sweeper's message_quarantined log lines name them and the reason; fix the cause, then `outbox replay --status FAILED`."
    }
    messages-failed = {
      metric      = "MessagesFailed"
      description = "The consumer ended messages FAILED (delivery refused them, or attempts or receives ran out), or the dead-letter function did (their copies reached the dead-letter queue): the message_failed log lines of either name them, each record keeps the reason; fix the delivery, then `outbox replay --status FAILED`."
    }
    messages-resent = {
      metric      = "MessagesResent"
      description = "The sweeper re-sent messages that were in flight with no copy left (a copy outlived message_retention_seconds, was purged or deleted by hand, or its last receive died and nothing took it over): its message_resent log lines name them; each goes on to the consumer as usual. If this recurs, find what removes copies from the queue or why the consumer falls so far behind; the next sweep re-sends whatever is still stranded."
    }
    sweep-failures = {
      metric      = "SweepFailures"
      description = "A sweep could not relay messages left PENDING, or re-send one stranded in flight (SQS or DynamoDB errors): they stay where they are and the next sweep tries again; if this persists, check the sweeper's log and SQS."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "count" {
  for_each = local.count_alarms

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = local.metrics_namespace
  metric_name         = each.value.metric
  dimensions          = local.metrics_dimensions
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# The worker reports the age of the oldest entry of each batch, the sweeper the true age of the
# oldest PENDING message on every run (every sweep_schedule period, so one datapoint a period).
# The sweeper relays what is older than sweep_min_age_seconds, so the threshold sits above that
# age plus one schedule period: an alarm means the sweeper itself cannot get a message out.
resource "aws_cloudwatch_metric_alarm" "oldest_pending" {
  alarm_name          = "${var.name}-oldest-pending-age"
  alarm_description   = "A message has stayed PENDING past oldest_pending_alarm_seconds although the sweeper relays them: check the sweeper's errors and SweepFailures, then SQS; `outbox replay --status PENDING` re-drives by hand."
  namespace           = local.metrics_namespace
  metric_name         = "OldestPendingAgeSeconds"
  dimensions          = local.metrics_dimensions
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.oldest_pending_alarm_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  lifecycle {
    precondition {
      condition     = var.oldest_pending_alarm_seconds > var.sweep_min_age_seconds
      error_message = "oldest_pending_alarm_seconds must exceed sweep_min_age_seconds (by at least one sweep_schedule period), or the alarm fires on every message the sweeper is about to relay."
    }
  }
}

# A sweeper that is never invoked (the schedule disabled or deleted, its role broken, the function
# throttled to nothing) fails silently: no errors, no metrics. Its invocations going quiet is the
# alarm, so missing data is breaching here.
resource "aws_cloudwatch_metric_alarm" "sweeper_silent" {
  alarm_name          = "${var.name}-sweeper-silent"
  alarm_description   = "The sweeper has not run for ${var.sweeper_silence_alarm_seconds} s: messages the stream could not relay stay PENDING. Check the ${var.name}-sweep schedule (state, role) and the sweeper's throttles; `outbox sweep` runs one sweep by hand meanwhile."
  namespace           = "AWS/Lambda"
  metric_name         = "Invocations"
  dimensions          = { FunctionName = aws_lambda_function.this["sweeper"].function_name }
  statistic           = "Sum"
  period              = var.sweeper_silence_alarm_seconds
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}
