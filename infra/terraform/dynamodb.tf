# Key schema, record index, TTL attribute and stream view as outbox/adapters/models.py declares
# them, the key names from hash_key and range_key (tests/infra checks this against the PynamoDB
# models). With create_table = false the caller's table is used instead (main.tf: local.table_*),
# and it must have the same record index.
resource "aws_dynamodb_table" "this" {
  count = var.create_table ? 1 : 0

  name                        = var.name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = var.hash_key
  range_key                   = var.range_key
  stream_enabled              = true
  stream_view_type            = "NEW_IMAGE"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = var.hash_key
    type = "S"
  }

  attribute {
    name = var.range_key
    type = "S"
  }

  attribute {
    name = local.record_index.hash_key
    type = "S"
  }

  attribute {
    name = local.record_index.range_key
    type = "S"
  }

  # Every message record by bucket and time, keys only: the sweeper walks it to find what is still
  # PENDING, whether or not its outbox entry is still there. On demand, so no capacity of its own.
  global_secondary_index {
    name            = local.record_index.name
    hash_key        = local.record_index.hash_key
    range_key       = local.record_index.range_key
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
    kms_key_arn = aws_kms_key.this.arn
  }

  tags = var.tags
}
