# Deploys the whole outbox with its defaults and an SNS topic for the alarms.
#   make package && cd infra/terraform/examples/complete && terraform init && terraform apply
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
  description = "Prefix of every resource name."
  type        = string
  default     = "outbox"
}

variable "deletion_protection" {
  description = "Deletion protection of the table; set false before `terraform destroy`."
  type        = bool
  default     = true
}

variable "lambda_package" {
  description = "The functions' zip: `make package` builds it at build/lambda/outbox.zip of this repository."
  type        = string
  default     = "../../../../build/lambda/outbox.zip"
}

variable "delivery" {
  description = "Your delivery function, \"package.module:function\", in the functions' zip (the consumer gets it as OUTBOX_DELIVERY); null keeps the outbox's own."
  type        = string
  default     = null
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

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
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
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

  name                = var.name
  lambda_package      = var.lambda_package
  alarm_topic_arn     = aws_sns_topic.alarms.arn
  deletion_protection = var.deletion_protection
  delivery            = var.delivery
  tags                = { Project = "outbox" }
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
  description = "OUTBOX_ID_SECRET_ARN for a service of yours that writes messages with idempotency keys."
  value       = module.outbox.id_secret_arn
}
