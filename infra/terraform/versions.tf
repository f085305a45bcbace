terraform {
  required_version = ">= 1.11" # write-only arguments (the id secret's value, secret.tf)

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100" # checked with 5.100: the ephemeral random password and secret_string_wo (secret.tf)
    }
  }
}
