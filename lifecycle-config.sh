#!/bin/bash
# SageMaker notebook-instance lifecycle configuration (on-create and on-start).
# Placeholder: the persistent-conda implementation builds the environment from environment.yml.
set -euo pipefail
echo "caption-workbench lifecycle configuration: not implemented yet" >&2
