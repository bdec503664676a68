#!/usr/bin/env bash
# Prepare a kind cluster as a Kepler Station host for `pytest -m cluster` (docs/sandbox.md).
#
#   deploy/kind/prepare-host.sh            # creates kind cluster "kepler-host", writes .kind/
#   source .kind/env && uv run pytest -m cluster
#   kind delete cluster --name kepler-host
#
# What a host needs and how this script provides it:
#   * NetworkPolicy and AdminNetworkPolicy enforcement: kube-network-policies (sigs.k8s.io)
#     in its ANP flavour, with the network-policy-api CRDs; kindnet's own embedded policy
#     engine is removed first (as kube-network-policies' own kind CI does);
#   * a default StorageClass: kind's local-path provisioner;
#   * metrics-server (chapter 6's autoscaler), with --kubelet-insecure-tls (kind's kubelets
#     have self-signed serving certificates);
#   * ingress-nginx with --enable-ssl-passthrough (Ingress exposure), its ports 80/443 mapped
#     to the machine running the tests; sandboxes are reached at <namespace>.127.0.0.1.nip.io;
#   * LoadBalancer Services (chapter 6): cloud-provider-kind, run next to the cluster;
#   * deploy/host-rbac.yaml, deploy/host-admission.yaml, deploy/host-network-policy.yaml, and a
#     kubeconfig for the bot's service account (kepler-system/kepler-station), not cluster-admin.
#
# Needs: docker, kind (>= 0.24), kubectl. Versions are pinned below; change them together.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER="${KIND_CLUSTER:-kepler-host}"
OUT="${KEPLER_KIND_DIR:-.kind}"
NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.32.2}"
NPAPI="https://raw.githubusercontent.com/kubernetes-sigs/network-policy-api/v0.1.5/config/crd/experimental"
KNP="https://raw.githubusercontent.com/kubernetes-sigs/kube-network-policies/v1.1.1/install-anp.yaml"
METRICS="https://github.com/kubernetes-sigs/metrics-server/releases/download/v0.7.2/components.yaml"
INGRESS="https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-v1.12.1/deploy/static/provider/kind/deploy.yaml"
CPK_IMAGE="registry.k8s.io/cloud-provider-kind/cloud-controller-manager:v0.6.0"

mkdir -p "$OUT"
cat > "$OUT/kind.yaml" <<KIND
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  kubeadmConfigPatches:
  - |
    kind: InitConfiguration
    nodeRegistration:
      kubeletExtraArgs:
        node-labels: "ingress-ready=true"
  extraPortMappings:
  - {containerPort: 80, hostPort: 80, protocol: TCP}
  - {containerPort: 443, hostPort: 443, protocol: TCP}
- role: worker
- role: worker
KIND

if ! kind get clusters | grep -qx "$CLUSTER"; then
    kind create cluster --name "$CLUSTER" --image "$NODE_IMAGE" --config "$OUT/kind.yaml" --wait 2m
fi
ADMIN="$OUT/admin.kubeconfig"
kind get kubeconfig --name "$CLUSTER" > "$ADMIN"
k() { kubectl --kubeconfig "$ADMIN" "$@"; }

echo "== NetworkPolicy + AdminNetworkPolicy (kube-network-policies)"
k -n kube-system delete daemonset kindnet --ignore-not-found
k apply -f "$NPAPI/policy.networking.k8s.io_adminnetworkpolicies.yaml"
k apply -f "$NPAPI/policy.networking.k8s.io_baselineadminnetworkpolicies.yaml"
k apply -f "$KNP"
k -n kube-system rollout status daemonset/kube-network-policies --timeout=180s

echo "== metrics-server"
k apply -f "$METRICS"
k -n kube-system patch deployment metrics-server --type=json \
  -p='[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--kubelet-insecure-tls"}]'
k -n kube-system rollout status deployment/metrics-server --timeout=180s

echo "== ingress-nginx with SSL passthrough"
k apply -f "$INGRESS"
k -n ingress-nginx patch deployment ingress-nginx-controller --type=json \
  -p='[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--enable-ssl-passthrough"}]'
k -n ingress-nginx rollout status deployment/ingress-nginx-controller --timeout=240s

echo "== LoadBalancer Services (cloud-provider-kind)"
if ! docker ps --format '{{.Names}}' | grep -qx "kepler-cloud-provider-kind"; then
    docker run -d --rm --name kepler-cloud-provider-kind --network kind \
      -v /var/run/docker.sock:/var/run/docker.sock "$CPK_IMAGE"
fi

echo "== Kepler Station host objects"
k apply -f deploy/host-rbac.yaml -f deploy/host-admission.yaml -f deploy/host-network-policy.yaml

echo "== the bot's kubeconfig (its service account, not cluster-admin)"
SERVER="$(k config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
CA="$(k config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')"
TOKEN="$(k -n kepler-system create token kepler-station --duration=24h)"
umask 077
cat > "$OUT/bot.kubeconfig" <<KUBE
apiVersion: v1
kind: Config
clusters:
- name: kind
  cluster: {server: "$SERVER", certificate-authority-data: "$CA"}
users:
- name: kepler-station
  user: {token: "$TOKEN"}
contexts:
- name: kepler
  context: {cluster: kind, user: kepler-station}
current-context: kepler
KUBE

cat > "$OUT/env" <<ENV
export HOST_KUBECONFIG="$PWD/$OUT/bot.kubeconfig"
export KEPLER_ADMIN_KUBECONFIG="$PWD/$OUT/admin.kubeconfig"
export KEPLER_SANDBOX_EXPOSURE=Ingress
export KEPLER_SANDBOX_HOST='{namespace}.127.0.0.1.nip.io'
ENV
echo "ready: source $OUT/env && uv run pytest -m cluster"
