#!/usr/bin/env bash
# Deploy benchmark: `examples/shop` (three functions) signed with a release key, deployed with
# `zerofn deploy` to a running release `zerofn serve` that enforces the advisory gate and an
# operator Rego policy. The first deploy compiles the components; the later ones redeploy the
# same version (compiled code cached) and measure admission, storage and activation.
#
#   bench/deploy.sh              # ROUNDS=5 by default
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}

cargo build --release -p zerofn --locked -q
zerofn=$PWD/target/release/zerofn
work=$(mktemp -d)
trap 'kill $server_pid 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
data=$work/data
mkdir -p "$data" "$work/policies"

"$zerofn" --data-dir "$data" keygen --output "$work/release" --no-passphrase >/dev/null
cat >"$work/trust.toml" <<EOF
[[keys]]
name = "release"
public_key = "release.pub"
apps = ["shop"]
EOF
cat >"$work/policies/guardrails.rego" <<'EOF'
package bench.guardrails

deny contains sprintf("function %s reaches %s in clear text", [name, rule.as_written]) if {
    some name, function in input.functions
    some rule in function.grants.egress
    rule.scheme == "http"
}

deny contains sprintf("%s depends on a yanked-looking version %s", [name, c.version]) if {
    some name, function in input.functions
    some c in function.sbom.components
    endswith(c.version, "-yanked")
}
EOF
cat >"$work/zerofn.config.toml" <<EOF
[server]
listen = "127.0.0.1:18090"
trust_policy = "trust.toml"

[advisories]
db = "$PWD/tests/advisories"
block_at = "high"

[admission]
policies = ["policies"]
EOF

"$zerofn" --data-dir "$data" build examples/shop >/dev/null
"$zerofn" --data-dir "$data" sign examples/shop --key "$work/release.key" >/dev/null
ZEROFN_LOG=error "$zerofn" --data-dir "$data" serve --config "$work/zerofn.config.toml" >/dev/null 2>&1 &
server_pid=$!
for _ in $(seq 100); do "$zerofn" --data-dir "$data" apps >/dev/null 2>&1 && break; sleep 0.1; done

echo "zerofn deploy examples/shop (signed, advisory gate, Rego policy), $(nproc) cores, $(date -u +%F)"
for round in $(seq "$ROUNDS"); do
  start=$(date +%s.%N)
  "$zerofn" --data-dir "$data" deploy examples/shop >/dev/null 2>&1
  end=$(date +%s.%N)
  label=$([ "$round" = 1 ] && echo "first (compiles)" || echo "again (cached)")
  printf "%-18s %6.3f s\n" "$label" "$(echo "$end - $start" | bc -l)"
done
