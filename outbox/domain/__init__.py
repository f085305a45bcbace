"""The core: messages, statuses, transitions, envelope and errors. No AWS import may appear here."""
