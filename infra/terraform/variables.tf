variable "name" {
  description = "Prefix of every resource name (table, queues, functions, roles, API, alarms)."
  type        = string
  default     = "outbox"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9-]{0,39}$", var.name))
    error_message = "name must start with a letter and hold at most 40 letters, digits or hyphens."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes them."
  type        = map(string)
  default     = {}
}

variable "lambda_package" {
  description = "Path of the Lambda zip of the api, worker and sweeper functions (and the consumer unless consumer_package is set): `make package` builds build/lambda/outbox.zip; from another repository, a zip holding the outbox package and its dependencies."
  type        = string
  nullable    = false

  validation {
    condition     = endswith(var.lambda_package, ".zip")
    error_message = "lambda_package must be the path of a .zip file."
  }
}

variable "create_table" {
  description = "Create the outbox's DynamoDB table (true), or attach to an existing table named by table_name and table_stream_arn (false); an existing table needs the outbox's stream, keys and record index (see table_name)."
  type        = bool
  default     = true
}

variable "create_api" {
  description = "Deploy the notification API (the HTTP API, its function, role, log groups and alarms). false: the outbox alone, for a service that writes its own messages (Outbox.transact_write) on its own table and delivers them with its own consumer; outputs naming the API are null then."
  type        = bool
  default     = true
  nullable    = false
}

variable "table_name" {
  description = "Name of the existing table when create_table = false (null otherwise). The table must have its stream on with view type NEW_IMAGE or NEW_AND_OLD_IMAGES, string (S) keys named hash_key and range_key, the global secondary index outbox-records (partition key outbox_pk, sort key outbox_sk, both S, projection KEYS_ONLY: the sweeper finds PENDING messages through it, also those whose outbox entry is gone), and (recommended) TTL on expires_at so delivered entries expire."
  type        = string
  default     = null

  validation {
    condition     = var.table_name == null || can(regex("^[A-Za-z0-9_.-]{3,255}$", var.table_name))
    error_message = "table_name must be a DynamoDB table name: 3 to 255 letters, digits, underscores, hyphens or dots."
  }
}

variable "table_stream_arn" {
  description = "Stream ARN of the existing table when create_table = false (required then): its view type must be NEW_IMAGE or NEW_AND_OLD_IMAGES."
  type        = string
  default     = null

  validation {
    condition     = var.table_stream_arn == null || can(regex("^arn:[^:]+:dynamodb:[^:]+:[0-9]{12}:table/[^/]+/stream/.+$", var.table_stream_arn))
    error_message = "table_stream_arn must be a DynamoDB stream ARN (arn:PARTITION:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL)."
  }
}

variable "manage_existing_table_policy" {
  description = "When create_table = false: attach the module's resource policies (deny every request without TLS) to the existing table and its stream. A DynamoDB resource has one policy and the module's would replace yours, so the default (false) leaves them alone: merge output table_policy_documents into your own policies instead. The module's own table always gets them."
  type        = bool
  default     = false
  nullable    = false
}

variable "table_kms_key_arn" {
  description = "When create_table = false: the customer-managed KMS key the existing table is encrypted with, if any; the functions get kms:Decrypt and kms:GenerateDataKey on it. Null for a table encrypted with an AWS owned or AWS managed key."
  type        = string
  default     = null

  validation {
    condition     = var.table_kms_key_arn == null || can(regex("^arn:[^:]+:kms:[^:]+:[0-9]{12}:key/.+$", var.table_kms_key_arn))
    error_message = "table_kms_key_arn must be a KMS key ARN (arn:PARTITION:kms:REGION:ACCOUNT:key/ID)."
  }
}

variable "hash_key" {
  description = "Name of the table's partition key attribute (type S); the functions get it as OUTBOX_HASH_KEY and the stream filter matches it. The module's own table defaults to pk; with create_table = false it is required (the existing table's name for it)."
  type        = string
  default     = null

  validation {
    condition     = var.hash_key == null || try(length(var.hash_key) >= 1 && length(var.hash_key) <= 255, false)
    error_message = "hash_key must be a DynamoDB attribute name of 1 to 255 characters."
  }
}

variable "range_key" {
  description = "Name of the table's sort key attribute (type S); the functions get it as OUTBOX_RANGE_KEY. The module's own table defaults to sk; with create_table = false it is required (the existing table's name for it)."
  type        = string
  default     = null

  validation {
    condition     = var.range_key == null || try(length(var.range_key) >= 1 && length(var.range_key) <= 255, false)
    error_message = "range_key must be a DynamoDB attribute name of 1 to 255 characters."
  }
}

variable "consumer_handler" {
  description = "Handler of the consumer function. \"auto\" (the default) runs the outbox's consumer, which delivers through `delivery`: worker.consumer.handler from lambda_package, or outbox.lambda_consumer.handler from a consumer_package built by `outbox package` (which needs `delivery`). Set it to your own make_handler module's handler to run that instead."
  type        = string
  default     = "auto"

  validation {
    condition     = var.consumer_handler == "auto" || can(regex("^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)+$", var.consumer_handler))
    error_message = "consumer_handler must be \"auto\" or a dotted Python path: module.function."
  }
}

variable "consumer_package" {
  description = "Path of the consumer function's zip (one that holds the outbox package and your delivery code); null means lambda_package."
  type        = string
  default     = null

  validation {
    condition     = var.consumer_package == null || can(regex("\\.zip$", var.consumer_package))
    error_message = "consumer_package must be the path of a .zip file."
  }
}

variable "delivery" {
  description = "Your delivery function as \"package.module:function\": the consumer gets it as OUTBOX_DELIVERY and calls it for each message. Null or empty keeps the outbox's own delivery."
  type        = string
  default     = null

  validation {
    condition     = var.delivery == null || var.delivery == "" || can(regex("^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$", var.delivery))
    error_message = "delivery must be a \"package.module:function\" reference."
  }
}

variable "lambda_runtime" {
  description = "Lambda runtime of the functions: python<python-version> of the package (pyproject.toml [tool.outbox.lambda-package]), whose bytecode is compiled for that Python alone."
  type        = string
  default     = "python3.11"

  validation {
    condition     = can(regex("^python3\\.(1[1-9])$", var.lambda_runtime))
    error_message = "lambda_runtime must be python3.11 or newer, and the package's python-version."
  }
}

variable "snap_start" {
  description = "Lambda SnapStart on the api, worker, consumer and dead-letter functions (Python 3.12 and later: set lambda_runtime, and build the package for that Python). Each deploy publishes a version and points an alias, live, at it; the mappings and the API invoke the alias. The functions then make their AWS clients (and the API its models) in the init phase SnapStart snapshots (OUTBOX_EAGER_INIT), so a new container's first request starts from a restored snapshot instead of importing and connecting. The sweeper, on a schedule, is left as it is."
  type        = bool
  default     = false
}

variable "functions" {
  description = "Memory (MB), timeout (s) and reserved concurrency of any function (keys api, worker, consumer, sweeper, dead-letter), each setting optional: what you give is merged over the module's defaults (main.tf: local.function_defaults), so { consumer = { memory_size = 1024 } } changes that alone. The sweeper's reserved concurrency is 1 (two sweeps never run at once); keep its timeout under the sweep_schedule period."
  type = map(object({
    memory_size          = optional(number)
    timeout              = optional(number)
    reserved_concurrency = optional(number)
  }))
  default  = {}
  nullable = false

  validation {
    condition     = length(setsubtract(keys(var.functions), ["api", "worker", "consumer", "sweeper", "dead-letter"])) == 0
    error_message = "functions may have the keys api, worker, consumer, sweeper and dead-letter; no other."
  }

  validation {
    condition     = alltrue([for size in values(var.functions) : (size.memory_size == null || try(size.memory_size >= 128 && size.memory_size <= 10240, false)) && (size.timeout == null || try(size.timeout >= 1 && size.timeout <= 900, false))])
    error_message = "functions: memory_size must be 128 to 10240 (MB) and timeout 1 to 900 (s), as Lambda allows."
  }

  validation {
    condition     = try(coalesce(var.functions["dead-letter"].reserved_concurrency, 2), 2) >= 2 && try(coalesce(var.functions["dead-letter"].reserved_concurrency, 2), 2) <= 1000
    error_message = "functions.dead-letter.reserved_concurrency must be 2 to 1000 (the dead-letter queue mapping's maximum_concurrency): 0 would leave copies in the dead-letter queue unsettled."
  }

  validation {
    condition     = try(coalesce(var.functions["sweeper"].reserved_concurrency, 1), 1) == 1
    error_message = "functions.sweeper.reserved_concurrency must be 1: two sweeps must never run at once."
  }
}

variable "log_level" {
  description = "LOG_LEVEL of the functions."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "log_retention_days" {
  description = "Days CloudWatch Logs keeps every log group of the module (the API's access log and each function's log): one of the values CloudWatch accepts, 1 to 3653. The logs hold no personal data (no source IP, principal, path, query string or body)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653 days."
  }
}

variable "fifo" {
  description = "Use FIFO queues: per-group ordering and deduplication ids, at FIFO throughput limits."
  type        = bool
  default     = false
}

variable "buckets" {
  description = "OUTBOX_BUCKETS: partitions of the outbox index. Never change it on a live table."
  type        = number
  default     = 16
}

variable "retention_days" {
  description = "OUTBOX_RETENTION_DAYS: days an outbox entry is kept before DynamoDB's TTL deletes it."
  type        = number
  default     = 7
}

variable "record_retention_days" {
  description = "OUTBOX_RECORD_RETENTION_DAYS: days a COMPLETED or FAILED record (and its personal data) is kept before DynamoDB's TTL deletes it."
  type        = number
  default     = 30

  validation {
    condition     = var.record_retention_days >= 1 && floor(var.record_retention_days) == var.record_retention_days
    error_message = "record_retention_days must be a whole number of days, at least 1."
  }
}

variable "max_relay_attempts" {
  description = "OUTBOX_MAX_RELAY_ATTEMPTS: SQS refusals of one entry before the worker quarantines it."
  type        = number
  default     = 5
}

variable "flip_concurrency" {
  description = "OUTBOX_FLIP_CONCURRENCY: concurrent PENDING -> QUEUED updates per worker or sweeper invocation."
  type        = number
  default     = 10
}

variable "max_clock_skew_ms" {
  description = "OUTBOX_MAX_CLOCK_SKEW_MS: the most (ms) a writer's clock may be off; after a stream loss the worker puts another writer's PENDING message of a group first only if it was made more than twice this before the batch."
  type        = number
  default     = 2000

  validation {
    condition     = var.max_clock_skew_ms >= 0 && floor(var.max_clock_skew_ms) == var.max_clock_skew_ms
    error_message = "max_clock_skew_ms must be a whole number of milliseconds, 0 or more."
  }
}

variable "max_delivery_attempts" {
  description = "OUTBOX_MAX_DELIVERY_ATTEMPTS: deliveries the consumer tries before marking a message FAILED."
  type        = number
  default     = 5
}

variable "dlq_max_receive_count" {
  description = "Receives before SQS moves a copy to the dead-letter queue (the consumer gets it as OUTBOX_MAX_RECEIVE_COUNT and ends a message FAILED on that receive); must exceed max_delivery_attempts."
  type        = number
  default     = 10
}

variable "sweep_min_age_seconds" {
  description = "OUTBOX_SWEEP_MIN_AGE_SECONDS: age (s) after which the sweeper relays a message still PENDING (the stream's turn comes first)."
  type        = number
  default     = 300

  validation {
    condition     = var.sweep_min_age_seconds >= 1 && floor(var.sweep_min_age_seconds) == var.sweep_min_age_seconds
    error_message = "sweep_min_age_seconds must be a whole number of seconds, at least 1."
  }
}

variable "sweep_schedule" {
  description = "EventBridge Scheduler expression the sweeper runs on: rate(...) or cron(...)."
  type        = string
  default     = "rate(5 minutes)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.sweep_schedule))
    error_message = "sweep_schedule must be a rate(...) or cron(...) expression."
  }
}

variable "message_retention_seconds" {
  description = "Retention of the main queue."
  type        = number
  default     = 345600
}

variable "stream_batch_size" {
  description = "Stream records per worker invocation."
  type        = number
  default     = 100
}

variable "stream_batching_window_seconds" {
  description = "Seconds the stream mapping may wait to fill a batch (0 sends at once)."
  type        = number
  default     = 0
}

variable "stream_parallelization_factor" {
  description = "Concurrent batches per shard (order is kept per outbox bucket either way)."
  type        = number
  default     = 1

  validation {
    condition     = var.stream_parallelization_factor >= 1 && var.stream_parallelization_factor <= 10
    error_message = "stream_parallelization_factor must be between 1 and 10."
  }
}

variable "stream_maximum_retry_attempts" {
  description = "Retries of a failing stream batch before its metadata goes to the on-failure queue (finite)."
  type        = number
  default     = 10

  validation {
    condition     = var.stream_maximum_retry_attempts >= 0 && var.stream_maximum_retry_attempts <= 10000
    error_message = "stream_maximum_retry_attempts must be between 0 and 10000 (finite)."
  }
}

variable "stream_maximum_record_age_seconds" {
  description = "Age after which a stream record goes to the on-failure queue instead of the worker (finite)."
  type        = number
  default     = 3600

  validation {
    condition     = var.stream_maximum_record_age_seconds >= 60 && var.stream_maximum_record_age_seconds <= 604800
    error_message = "stream_maximum_record_age_seconds must be between 60 and 604800 (finite)."
  }
}

variable "consumer_batch_size" {
  description = "SQS messages per consumer invocation."
  type        = number
  default     = 10
}

variable "consumer_batching_window_seconds" {
  description = "Seconds the SQS mapping may wait to fill a batch (ignored for FIFO queues)."
  type        = number
  default     = 0
}

variable "consumer_maximum_concurrency" {
  description = "Most concurrent consumer invocations the SQS mapping starts (2 to 1000)."
  type        = number
  default     = 10
}

variable "deletion_protection" {
  description = "Deletion protection of the DynamoDB table."
  type        = bool
  default     = true
}

variable "kms_deletion_window_days" {
  description = "Waiting period before the customer-managed key is deleted."
  type        = number
  default     = 30
}

variable "authorization" {
  description = "How the API authorises every route: AWS_IAM (SigV4 callers) or JWT (an OIDC issuer)."
  type        = string
  default     = "AWS_IAM"

  validation {
    condition     = contains(["AWS_IAM", "JWT"], var.authorization)
    error_message = "authorization must be AWS_IAM or JWT."
  }
}

variable "jwt_issuer" {
  description = "Issuer URL of the JWT authoriser (authorization = JWT)."
  type        = string
  default     = null
}

variable "jwt_audience" {
  description = "Accepted audiences of the JWT authoriser (authorization = JWT)."
  type        = list(string)
  default     = []
}

variable "api_throttling_rate_limit" {
  description = "Steady-state requests per second the API stage accepts."
  type        = number
  default     = 100
}

variable "api_throttling_burst_limit" {
  description = "Burst of requests the API stage accepts."
  type        = number
  default     = 200
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the functions' own metrics (EMF: OUTBOX_METRICS_NAMESPACE); the alarms on them follow it. Two deployments in one account keep their metrics apart with their own namespace or metrics_service."
  type        = string
  default     = "Outbox"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9._/#:-]{1,255}$", var.metrics_namespace)) && !startswith(var.metrics_namespace, "AWS/")
    error_message = "metrics_namespace must be 1 to 255 letters, digits or . - _ / # : and must not start with AWS/ (CloudWatch keeps that for AWS's own)."
  }
}

variable "metrics_service" {
  description = "Value of the metrics' Service dimension (OUTBOX_SERVICE), which the alarms filter on; null: the module's name."
  type        = string
  default     = null

  validation {
    condition     = var.metrics_service == null || can(regex("^[^\\x00-\\x1f]{1,255}$", var.metrics_service))
    error_message = "metrics_service must be 1 to 255 printable characters."
  }
}

variable "alarm_topic_arn" {
  description = "SNS topic that receives the alarms (and their recovery)."
  type        = string
}

variable "iterator_age_alarm_ms" {
  description = "Stream iterator age (ms) above which the worker is falling behind."
  type        = number
  default     = 60000
}

variable "oldest_pending_alarm_seconds" {
  description = "Age (s) of the oldest PENDING message above which delivery is late; above sweep_min_age_seconds plus one sweep_schedule period, since the sweeper relays what is older than its minimum age on each run."
  type        = number
  default     = 900
}

variable "sweeper_silence_alarm_seconds" {
  description = "Time (s) without a sweeper invocation after which the sweeper-silent alarm fires; a multiple of 60, longer than one sweep_schedule period (default: six runs of rate(5 minutes))."
  type        = number
  default     = 1800
  validation {
    condition     = var.sweeper_silence_alarm_seconds >= 60 && var.sweeper_silence_alarm_seconds % 60 == 0
    error_message = "sweeper_silence_alarm_seconds must be a multiple of 60, at least 60."
  }
}

variable "replay_role_arn" {
  description = "ARN of the operator role that runs `outbox replay` (it sends to the main queue); null: only the worker and the sweeper may send."
  type        = string
  default     = null

  validation {
    condition     = var.replay_role_arn == null || can(regex("^arn:[a-z-]+:iam::[0-9]{12}:role/", var.replay_role_arn))
    error_message = "replay_role_arn must be an IAM role ARN (arn:<partition>:iam::<account>:role/...)."
  }
}

variable "expected_messages_per_second" {
  description = "The rate you plan for (messages a second), or null. The plan then warns (check capacity) when buckets, stream_parallelization_factor, the worker's and the consumer's concurrency or a FIFO queue cannot carry it with headroom; docs/capacity.md has the model and what to set."
  type        = number
  default     = null

  validation {
    condition     = var.expected_messages_per_second == null || try(var.expected_messages_per_second > 0, false)
    error_message = "expected_messages_per_second must be a positive number (or null)."
  }
}
