"""An order service that publishes ``OrderPlaced`` through the outbox, in the same transaction as the order."""
