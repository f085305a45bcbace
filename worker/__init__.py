"""The Lambda entry points the Terraform module deploys, each a few lines over the library.

They ship in the Lambda zip (``make package``), never in the wheel: a service installing
``dynamodb-outbox`` gets one top-level package, ``outbox``, and keeps the name ``worker`` for itself.
"""
