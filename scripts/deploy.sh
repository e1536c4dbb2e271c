#!/usr/bin/env bash
# Checks the Kubernetes manifests (deploy/kubernetes) and the Helm chart
# (deploy/helm/ferry): `helm lint` and `helm template` with Helm pinned as a
# Go tool in tools/go.mod, then the rendered objects against what Ferry
# needs (tools/deploycheck: probes on the metrics port, grace period ≥ the
# drain arithmetic, non-root, read-only root filesystem, selectors).
# Building Helm from source takes about 3 minutes on a cold 2-CPU machine,
# seconds once cached.
set -euo pipefail
cd "$(dirname "$0")/../tools"
echo "== helm lint"
go tool helm lint --strict ../deploy/helm/ferry
echo "== helm template"
go tool helm template ferry ../deploy/helm/ferry >/dev/null
go tool helm template ferry ../deploy/helm/ferry --set serviceMonitor.enabled=true --set autoscaling.enabled=true >/dev/null
echo "== rendered objects"
go test -count=1 ./deploycheck/
