# The capacity model of outbox/capacity.py (docs/capacity.md), checked against the rate the caller
# states: each stage's ceiling in messages a second, and a warning naming the stages that cannot
# carry var.expected_messages_per_second at half their ceiling. tests/infra/test_wiring.py holds
# these figures equal to the Python model's.
locals {
  capacity = {
    bucket_msg_per_s              = 500 # 1,000 write units a second per key / 2 per entry of up to 1 KB
    worker_msg_per_s              = 500 # one worker invocation (bench/capacity.py, 5 ms per request)
    consumer_msg_per_s            = 70  # one consumer invocation, a delivery taking no time
    fifo_msg_per_s                = 3000
    headroom                      = 0.5
    table_write_units_per_message = 9
    partition_write_units         = 1000
  }
  capacity_rate = coalesce(var.expected_messages_per_second, 0)
  # One stream shard per table partition, one partition per 1,000 write units the table takes.
  capacity_shards = max(1, ceil(local.capacity_rate * local.capacity.table_write_units_per_message / local.capacity.partition_write_units))
  capacity_stages = merge(
    {
      buckets = var.buckets * local.capacity.bucket_msg_per_s
      # A bucket's records go one batch at a time, so no more batches run than buckets.
      "stream_parallelization_factor and the worker's concurrency"  = min(local.capacity_shards * var.stream_parallelization_factor, local.function_sizes["worker"].reserved_concurrency, var.buckets) * local.capacity.worker_msg_per_s
      "consumer_maximum_concurrency and the consumer's concurrency" = min(var.consumer_maximum_concurrency, local.function_sizes["consumer"].reserved_concurrency) * local.capacity.consumer_msg_per_s
    },
    var.fifo ? { "fifo (a FIFO queue without high throughput)" = local.capacity.fifo_msg_per_s } : {},
  )
  capacity_short = [for setting, ceiling in local.capacity_stages : "${setting} carries ${floor(ceiling * local.capacity.headroom)}" if ceiling * local.capacity.headroom < local.capacity_rate]
}

check "capacity" {
  assert {
    condition     = length(local.capacity_short) == 0
    error_message = "expected_messages_per_second = ${local.capacity_rate} is more than this configuration carries with headroom (messages a second): ${join("; ", local.capacity_short)}. docs/capacity.md says what to set."
  }
}
