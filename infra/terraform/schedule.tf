# EventBridge Scheduler runs the sweeper every sweep_schedule, through a role that may invoke the
# sweeper and nothing else. The scheduler retries a failed invocation for a few minutes, then drops
# it; there is no dead-letter queue: its events carry nothing, and the next run finds the same
# PENDING messages, so a dropped run costs one period of delay. (A DLQ would also need sqs and kms
# grants on this role.) The sweeper's errors, SweepFailures, the oldest-PENDING age and a sweeper
# that is not invoked at all (sweeper_silent) are alarmed instead.
data "aws_iam_policy_document" "assume_scheduler" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "InvokeTheSweeper"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.this["sweeper"].arn]
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-sweep-schedule"
  description        = "Lets the ${var.name}-sweep schedule invoke the ${var.name}-sweeper function, and nothing else"
  assume_role_policy = data.aws_iam_policy_document.assume_scheduler.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "${var.name}-sweep-schedule"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}

resource "aws_scheduler_schedule" "sweep" {
  # checkov:skip=CKV_AWS_297:The schedule stores no data (its input is a fixed empty object); a customer-managed key would only add a kms:Decrypt grant to its role and a KMS call per run.
  name                = "${var.name}-sweep"
  description         = "Runs the ${var.name}-sweeper function: relays every message left PENDING"
  schedule_expression = var.sweep_schedule
  state               = "ENABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.this["sweeper"].arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({})

    # Invoking fails only when Lambda refuses the event; a run later than this is the next run's job.
    retry_policy {
      maximum_event_age_in_seconds = 300
      maximum_retry_attempts       = 3
    }
  }

  depends_on = [aws_iam_role_policy.scheduler]
}

# Lambda's own handling of the (asynchronous) scheduled events: no retry of a failed sweep, the
# next run is the retry; and no stale run, an event that waited behind a running sweep (reserved
# concurrency 1) for longer than this is dropped rather than swept twice in a row.
resource "aws_lambda_function_event_invoke_config" "sweeper" {
  function_name                = aws_lambda_function.this["sweeper"].function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 300
}
