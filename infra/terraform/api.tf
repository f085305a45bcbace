locals {
  routes = {
    "POST /messages"     = "POST/messages"
    "GET /messages/{id}" = "GET/messages/*"
  }
  jwt = var.authorization == "JWT"
  # Every resource of the API exists once with create_api, not at all without it.
  api_count  = var.create_api ? 1 : 0
  api_routes = var.create_api ? local.routes : {}

  # One JSON line per request: what an operator needs to find a request, see how it ended and where
  # the time went, and follow it into the API function's log (integrationRequestId is the
  # invocation's aws_request_id there, beside the message id). No personal data: no source IP or
  # user agent; no principal, which API Gateway cannot hash (the message's record keeps its
  # SHA-256); no path, which holds the message id (routeKey names the route); no query or body.
  access_log_fields = {
    requestId            = "$context.requestId"
    requestTime          = "$context.requestTime"
    routeKey             = "$context.routeKey"
    status               = "$context.status"
    responseLength       = "$context.responseLength"
    latencyMs            = "$context.responseLatency"
    integrationLatencyMs = "$context.integration.latency"
    integrationStatus    = "$context.integration.integrationStatus"
    integrationRequestId = "$context.integration.requestId"
    integrationError     = "$context.integration.error"
    error                = "$context.error.message"
    errorType            = "$context.error.responseType"
    authError            = "$context.authorizer.error"
  }
}

resource "aws_apigatewayv2_api" "this" {
  count = local.api_count

  name          = var.name
  description   = "Outbox: accepts messages and answers their status"
  protocol_type = "HTTP"
  tags          = var.tags
}

resource "aws_apigatewayv2_authorizer" "jwt" {
  count = local.jwt ? local.api_count : 0

  api_id           = aws_apigatewayv2_api.this[0].id
  name             = "${var.name}-jwt"
  authorizer_type  = "JWT"
  identity_sources = ["$request.header.Authorization"]

  jwt_configuration {
    issuer   = var.jwt_issuer
    audience = var.jwt_audience
  }

  lifecycle {
    precondition {
      condition     = var.jwt_issuer != null && length(var.jwt_audience) > 0
      error_message = "authorization = JWT needs jwt_issuer and at least one jwt_audience."
    }
  }
}

resource "aws_apigatewayv2_integration" "api" {
  count = local.api_count

  api_id                 = aws_apigatewayv2_api.this[0].id
  integration_type       = "AWS_PROXY"
  integration_uri        = var.snap_start ? aws_lambda_alias.live["api"].invoke_arn : aws_lambda_function.this["api"].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = min(30000, local.function_sizes["api"].timeout * 1000 + 1000)
}

# Every route is authorised: SigV4 (IAM) by default, or the JWT authoriser.
resource "aws_apigatewayv2_route" "this" {
  for_each = local.api_routes

  api_id             = aws_apigatewayv2_api.this[0].id
  route_key          = each.key
  target             = "integrations/${aws_apigatewayv2_integration.api[0].id}"
  authorization_type = var.authorization
  authorizer_id      = local.jwt ? aws_apigatewayv2_authorizer.jwt[0].id : null
}

resource "aws_cloudwatch_log_group" "api_access" {
  count = local.api_count

  name              = "/aws/apigateway/${var.name}-access"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = var.tags
}

resource "aws_apigatewayv2_stage" "default" {
  count = local.api_count

  api_id      = aws_apigatewayv2_api.this[0].id
  name        = "$default"
  auto_deploy = true

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access[0].arn
    format          = jsonencode(local.access_log_fields)
  }

  default_route_settings {
    throttling_rate_limit    = var.api_throttling_rate_limit
    throttling_burst_limit   = var.api_throttling_burst_limit
    detailed_metrics_enabled = true
  }

  tags = var.tags
}

resource "aws_lambda_permission" "api" {
  for_each = local.api_routes

  statement_id  = "AllowApiGateway-${replace(replace(each.key, " ", "-"), "/[^A-Za-z0-9-]/", "")}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["api"].function_name
  qualifier     = var.snap_start ? aws_lambda_alias.live["api"].name : null
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this[0].execution_arn}/*/${each.value}"
}

# The API's resources got a count with create_api: a deployment from before keeps its API (and URL).
moved {
  from = aws_apigatewayv2_api.this
  to   = aws_apigatewayv2_api.this[0]
}

moved {
  from = aws_apigatewayv2_integration.api
  to   = aws_apigatewayv2_integration.api[0]
}

moved {
  from = aws_apigatewayv2_stage.default
  to   = aws_apigatewayv2_stage.default[0]
}

moved {
  from = aws_cloudwatch_log_group.api_access
  to   = aws_cloudwatch_log_group.api_access[0]
}
