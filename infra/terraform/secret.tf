# The id secret: the API keys with it the message ids it derives from Idempotency-Keys and the
# owners it stores (HMAC-SHA256), so nobody without it computes another caller's id, and a table
# reader cannot reverse an owner into a principal. Secrets Manager generates the value (an
# ephemeral resource) and the version takes it write-only: it is in no plan and no state, and the
# function's environment holds only the secret's ARN. The API reads the current and previous
# values at its first request and again every 5 minutes (outbox/adapters/secret.py).
#
# Rotate by raising id_secret_version (or `aws secretsmanager put-secret-value`): the new value
# becomes AWSCURRENT and the old one AWSPREVIOUS. For id_secret_rotation_window_seconds the API
# keeps writing under the previous value and checks the new one's id, then the reverse for as
# long again, so a retried POST finds its message whichever function wrote it; records written
# under either value stay readable by their callers until the next rotation.

variable "id_secret_version" {
  description = "Version of the id secret's generated value: raise it to rotate the secret (a new random value becomes current, the old one previous)."
  type        = number
  default     = 1

  validation {
    condition     = var.id_secret_version >= 1 && floor(var.id_secret_version) == var.id_secret_version
    error_message = "id_secret_version must be a whole number of 1 or more."
  }
}

variable "id_secret_rotation_window_seconds" {
  description = "After a rotation, how long the API still writes ids under the previous value (then as long again checks them): longer than a client keeps retrying one POST. 0 switches at once (a retry spanning the rotation may be a second message)."
  type        = number
  default     = 86400

  validation {
    condition     = var.id_secret_rotation_window_seconds == 0 || var.id_secret_rotation_window_seconds >= 600
    error_message = "id_secret_rotation_window_seconds must be 0 or at least 600 (twice the 5 minutes in which every function reads a new value)."
  }
}

variable "role_sessions" {
  description = "Callers that assume an IAM role: \"shared\" (every session of a role is one caller; session names are chosen by whoever assumes the role) or \"apart\" (each session name is its own caller: only where a trusted party sets it, such as IAM Identity Center, and nobody may assume the role with a name of their own)."
  type        = string
  default     = "shared"

  validation {
    condition     = contains(["shared", "apart"], var.role_sessions)
    error_message = "role_sessions must be \"shared\" or \"apart\"."
  }
}

resource "aws_secretsmanager_secret" "id" {
  # checkov:skip=CKV2_AWS_57:A rotation is a new version (id_secret_version, or put-secret-value); the API honours the previous value for the rotation window, which a rotation Lambda's schedule would not know to respect.
  name_prefix             = "${var.name}-id-secret-"
  description             = "${var.name}: the key of the API's message ids and owners (OUTBOX_ID_SECRET_ARN)"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 30
  tags                    = var.tags
}

ephemeral "aws_secretsmanager_random_password" "id" {
  password_length     = 64
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret_version" "id" {
  secret_id                = aws_secretsmanager_secret.id.id
  secret_string_wo         = ephemeral.aws_secretsmanager_random_password.id.random_password
  secret_string_wo_version = var.id_secret_version
}

locals {
  # The API's identity settings (lambda.tf merges them into its environment). The ARN is taken
  # through the version, so the function exists only once the secret has a value.
  api_identity_environment = {
    OUTBOX_ID_SECRET_ARN            = aws_secretsmanager_secret_version.id.secret_id
    OUTBOX_ID_SECRET_WINDOW_SECONDS = tostring(var.id_secret_rotation_window_seconds)
    OUTBOX_ROLE_SESSIONS            = var.role_sessions
  }
}

output "id_secret_arn" {
  description = "The id secret (Secrets Manager): give it to a service of yours that writes messages with idempotency keys (OUTBOX_ID_SECRET_ARN), or rotate it with put-secret-value."
  value       = aws_secretsmanager_secret.id.arn
}
