terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.43" # the first with aws_dynamodb_resource_policy
    }
  }
}
