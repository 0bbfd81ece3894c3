# Sourced by validate.sh and test_validate.sh: makes the cached Python venv with the pinned
# requirements (one-time pip install; again only when requirements.txt changes) and sets
#   VALIDATE_DIR  this folder      VALIDATE_PY  the venv's python      REPO_ROOT
# Cache: ${FITSTREAM_VALIDATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/fitstream/validate-venv}

VALIDATE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$VALIDATE_DIR/../.." && pwd)"
_venv="${FITSTREAM_VALIDATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/fitstream/validate-venv}"
VALIDATE_PY="$_venv/bin/python"

_validate_venv() {
  local want
  want="$(sha256sum "$VALIDATE_DIR/requirements.txt" | cut -d' ' -f1)"
  if [ -x "$VALIDATE_PY" ] && [ "$(cat "$_venv/.requirements.sha256" 2>/dev/null)" = "$want" ] &&
    "$VALIDATE_PY" -c 'import jsonschema, kubernetes_validate, yaml' 2>/dev/null; then
    return 0 # up to date, and its Python still runs
  fi
  echo "validate: installing $(grep -c '^[a-zA-Z]' "$VALIDATE_DIR/requirements.txt") pinned packages into $_venv" >&2
  local python="${PYTHON:-python3}"
  rm -rf "$_venv"
  "$python" -m venv "$_venv" &&
    "$_venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
      -r "$VALIDATE_DIR/requirements.txt" &&
    echo "$want" >"$_venv/.requirements.sha256"
}

mkdir -p "$(dirname "$_venv")"
if command -v flock >/dev/null 2>&1; then
  # validate.sh and test_validate.sh may start together: one of them installs.
  exec {_venv_lock}>"$_venv.lock"
  flock "$_venv_lock"
  _validate_venv || { echo "validate: could not set up $_venv" >&2; exit 2; }
  flock -u "$_venv_lock"
  exec {_venv_lock}>&-
else
  _validate_venv || { echo "validate: could not set up $_venv" >&2; exit 2; }
fi

command -v kubectl >/dev/null 2>&1 || { echo "validate: kubectl is needed (kubectl kustomize renders the overlays)" >&2; exit 2; }
