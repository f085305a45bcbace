"""Infrastructure: the schema check of the Terraform module and the Lambda package build."""
