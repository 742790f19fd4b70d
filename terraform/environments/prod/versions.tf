terraform {
  required_version = ">= 1.10" # the S3 backend's use_lockfile

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.70"
    }
  }

  # State in S3 with locking; give the bucket and key at init:
  #   terraform init -backend-config="bucket=<state bucket>" -backend-config="key=dualnova/prod.tfstate" -backend-config="region=<region>"
  backend "s3" {
    use_lockfile = true
    encrypt      = true
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, { Project = "dualnova", Environment = "prod" })
  }
}
