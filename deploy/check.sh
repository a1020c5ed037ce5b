#!/usr/bin/env bash
# Checks the deploy files with the tools that exist for them, installing the
# missing ones from Debian's packages and PyPI (.ci/run calls this):
#
# - every YAML file parses, and the Grafana dashboard is JSON;
# - `promtool check config` / `check rules`: prometheus.yml and alerts.yaml;
# - `kubernetes-validate --strict`: every Kubernetes manifest whose kind has
#   a schema (ServiceMonitor and Kustomization have none there; the
#   structural test in tests/api/deploy_files.rs covers them);
# - `docker compose config` on both compose files, where the compose plugin
#   exists (it does not on CI's machines; the YAML parse still runs).
#
# The Dockerfile cannot be built here (no Docker engine). That every metric
# the dashboard and the alerts query exists is `cargo test --test api
# deploy_files`, against a running clickback.
set -euo pipefail
cd "$(dirname "$0")"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Kubernetes version the manifests must be valid for: the preStop sleep
# action needs 1.30.
KUBERNETES_VERSION=1.30.0

if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "--- installing PyYAML"
  python3 -m pip install --quiet pyyaml
fi
if ! command -v promtool >/dev/null 2>&1; then
  echo "--- installing promtool (Debian's prometheus)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
if ! python3 -c 'import kubernetes_validate' 2>/dev/null; then
  echo "--- installing kubernetes-validate"
  python3 -m pip install --quiet kubernetes-validate
fi

echo "--- YAML and JSON parse"
python3 - <<'PY'
import json, pathlib, sys, yaml

failed = False
for path in sorted(pathlib.Path(".").rglob("*")):
    if path.suffix not in (".yaml", ".yml", ".json"):
        continue
    try:
        with path.open() as f:
            if path.suffix == ".json":
                json.load(f)
            else:
                list(yaml.safe_load_all(f))
        print(f"ok   {path}")
    except Exception as e:
        failed = True
        print(f"FAIL {path}: {e}")
sys.exit(1 if failed else 0)
PY

echo "--- promtool"
promtool check config prometheus/prometheus.yml
promtool check rules prometheus/alerts.yaml

echo "--- kubernetes-validate (Kubernetes ${KUBERNETES_VERSION})"
# Warnings for kinds without a schema are expected (see above); failures are not.
python3 -m kubernetes_validate --strict -k "${KUBERNETES_VERSION}" k8s/*.yaml

echo "--- docker compose config"
if docker compose version >/dev/null 2>&1; then
  export CLICKBACK_ADMIN_TOKEN=check-only-admin-token-000000000 CLICKBACK_HASH_SALT=check-only-salt
  docker compose -f compose.yaml config --quiet
  docker compose -f compose.yaml -f compose.cluster.yaml config --quiet
  echo "ok"
else
  echo "skipped: no docker compose plugin here (the YAML parse above covers the files)"
fi
echo "deploy files: ok"
