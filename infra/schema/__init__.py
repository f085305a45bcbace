"""The AWS provider schema, extracted offline for the module check."""
