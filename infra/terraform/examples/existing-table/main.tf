# Attaches the outbox to a table of the caller's ("PK"/"SK" keys, its own KMS key) and delivers each
# message with the caller's own function (orders/consumer.py: deliver) from the caller's zip.
# Here the table and its key are created alongside; in your repository they already exist.
#   make package && cd infra/terraform/examples/existing-table && terraform init
#   terraform apply -var consumer_package=path/to/orders-consumer.zip
terraform {
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "eu-west-1"
}

variable "name" {
  description = "Name of the orders table, and prefix of everything else."
  type        = string
  default     = "orders"
}

variable "deletion_protection" {
  description = "Deletion protection of the orders table; set false before `terraform destroy`."
  type        = bool
  default     = true
}

variable "lambda_package" {
  description = "The api, worker and sweeper functions' zip: `make package` builds it at build/lambda/outbox.zip of this repository."
  type        = string
  default     = "../../../../build/lambda/outbox.zip"
}

variable "consumer_package" {
  description = "Your consumer's zip: what `make package` puts in outbox.zip (the outbox package and its dependencies) plus your orders/consumer.py."
  type        = string
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_root = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
}

# The caller's table and its key: a stream with new images, string keys "PK" and "SK" (the module
# is told their names), the outbox's record index (the sweeper queries it), TTL on expires_at so
# delivered outbox entries expire.
resource "aws_kms_key" "orders" {
  description             = "${var.name}: the orders table"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersAndDelegatesToIam"
        Effect    = "Allow"
        Principal = { AWS = local.account_root }
        Action    = "kms:*"
        Resource  = "*"
      },
    ]
  })
}

resource "aws_dynamodb_table" "orders" {
  name                        = var.name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "PK"
  range_key                   = "SK"
  stream_enabled              = true
  stream_view_type            = "NEW_AND_OLD_IMAGES"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "PK"
    type = "S"
  }

  attribute {
    name = "SK"
    type = "S"
  }

  attribute {
    name = "outbox_pk"
    type = "S"
  }

  attribute {
    name = "outbox_sk"
    type = "S"
  }

  # The outbox's record index, exactly so: the sweeper walks it by bucket and time to find every
  # message still PENDING (`outbox bootstrap` creates it on a table it makes).
  global_secondary_index {
    name            = "outbox-records"
    hash_key        = "outbox_pk"
    range_key       = "outbox_sk"
    projection_type = "KEYS_ONLY"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.orders.arn
  }
}

# The orders table's and its stream's own resource policies stay yours: the module leaves a
# caller's policies alone (manage_existing_table_policy = false), so they take its TLS denial here,
# beside whatever else they grant (add your statements to these documents).
data "aws_iam_policy_document" "orders" {
  for_each = { table = aws_dynamodb_table.orders.arn, stream = aws_dynamodb_table.orders.stream_arn }

  source_policy_documents = [module.outbox.table_policy_documents[each.key]]
}

resource "aws_dynamodb_resource_policy" "orders" {
  for_each = { table = aws_dynamodb_table.orders.arn, stream = aws_dynamodb_table.orders.stream_arn }

  resource_arn = each.value
  policy       = data.aws_iam_policy_document.orders[each.key].json
}

# CloudWatch publishes alarms to an encrypted topic only with a customer-managed key whose policy
# lets it (the AWS managed alias/aws/sns key does not), so the topic gets its own key.
resource "aws_kms_key" "alarms" {
  description             = "${var.name}: the alarm topic"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersAndDelegatesToIam"
        Effect    = "Allow"
        Principal = { AWS = local.account_root }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchPublishesAlarms"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
      },
    ]
  })
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.alarms.arn
}

module "outbox" {
  source = "../.."

  name            = "${var.name}-outbox"
  lambda_package  = var.lambda_package
  alarm_topic_arn = aws_sns_topic.alarms.arn
  tags            = { Project = "orders" }

  # Attach to the table above instead of creating one.
  create_table      = false
  table_name        = aws_dynamodb_table.orders.name
  table_stream_arn  = aws_dynamodb_table.orders.stream_arn
  table_kms_key_arn = aws_kms_key.orders.arn
  hash_key          = "PK"
  range_key         = "SK"

  # The outbox's consumer drives the lifecycle and calls orders.consumer.deliver for each message.
  consumer_package = var.consumer_package
  delivery         = "orders.consumer:deliver"
}

output "api_url" {
  description = "POST /messages here (SigV4-signed)."
  value       = module.outbox.api_url
}

output "environment" {
  description = "Export these to run `outbox replay` against the deployment."
  value       = module.outbox.environment
}

output "function_names" {
  description = "The functions: api, worker, consumer, sweeper, dead-letter."
  value       = module.outbox.function_names
}

output "id_secret_arn" {
  description = "OUTBOX_ID_SECRET_ARN for the order service (its orders carry idempotency keys); its role needs secretsmanager:GetSecretValue on it."
  value       = module.outbox.id_secret_arn
}

output "caller_policy_document" {
  description = "Attach to the order service's role: what it needs to write orders' messages with the library (the outbox's own keys only), beside its grants on its own items."
  value       = module.outbox.caller_policy_document
}
