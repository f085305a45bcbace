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
  alarm_description   = each.key == "dlq" ? "Copies the consumer could not process reached the dead-letter queue." : "The worker gave up on stream batches: run `outbox replay` for the window they name."
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
  for_each = local.functions

  alarm_name          = "${var.name}-${each.key}-errors"
  alarm_description   = "The ${each.key} function is failing invocations."
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

# Emitted by the worker as EMF (outbox/metrics.py: namespace Outbox, dimension Service=outbox).
resource "aws_cloudwatch_metric_alarm" "oldest_pending" {
  alarm_name          = "${var.name}-oldest-pending-age"
  alarm_description   = "Messages stay PENDING too long: the stream or SQS is failing; `outbox replay --status PENDING --min-age 5m` re-drives them."
  namespace           = "Outbox"
  metric_name         = "OldestPendingAgeSeconds"
  dimensions          = { Service = "outbox" }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = var.oldest_pending_alarm_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}
