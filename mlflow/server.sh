#!/usr/bin/env bash
# The shared resbench MLflow tracking server: a Postgres backend store, artifacts in an
# S3-compatible bucket behind the server's artifact proxy (--serve-artifacts: clients only
# talk HTTP to the server and need no S3 credentials), MLflow basic-auth on by default.
#
# Run it on one machine (see docs/clusters.md), or as the entrypoint of the Kubernetes
# Deployment in mlflow/k8s/, which sets the same variables from a ConfigMap and a Secret.
#
# Settings (environment variables):
#   MLFLOW_BACKEND_STORE_URI      required: postgresql://USER@HOST:5432/DB (keep the password
#                                 out of the URI: PGPASSWORD or ~/.pgpass)
#   MLFLOW_ARTIFACTS_DESTINATION  required: s3://BUCKET/PREFIX
#   MLFLOW_S3_ENDPOINT_URL        S3-compatible endpoint (MinIO, Ceph, ...); unset for AWS S3
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   bucket credentials (or an instance role)
#   MLFLOW_HOST (127.0.0.1), MLFLOW_PORT (5000), MLFLOW_WORKERS (2)
#   MLFLOW_SERVER_ALLOWED_HOSTS   Host headers accepted (default: localhost and private IPs)
#   MLFLOW_AUTH                   basic (default) or none
#   with MLFLOW_AUTH=basic:
#   MLFLOW_AUTH_DATABASE_URI      required: users and permissions, e.g. a second database
#                                 postgresql://USER@HOST:5432/mlflow_auth
#   MLFLOW_AUTH_ADMIN_USERNAME    admin user created on the first start (default admin)
#   MLFLOW_AUTH_ADMIN_PASSWORD    its password (needed until the admin user exists)
#   MLFLOW_AUTH_DEFAULT_PERMISSION  READ (default), EDIT, MANAGE or NO_PERMISSIONS
#   MLFLOW_FLASK_SERVER_SECRET_KEY  required: CSRF key, the same on every replica
#   MLFLOW_AUTH_CONFIG_PATH       use this basic_auth.ini instead of generating one
#   MLFLOW                        the mlflow executable (default: mlflow on PATH)
# Clients authenticate with MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.
set -euo pipefail

die() {
  echo "server.sh: $*" >&2
  exit 2
}
need() {
  [ -n "${!1:-}" ] || die "set $1 ($2)"
}
mask() { # hide a password inside a URI
  sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#' <<<"$1"
}

# Empty values (e.g. an empty ConfigMap entry) mean "not set".
for var in MLFLOW_S3_ENDPOINT_URL MLFLOW_SERVER_ALLOWED_HOSTS AWS_ACCESS_KEY_ID \
  AWS_SECRET_ACCESS_KEY PGPASSWORD MLFLOW_AUTH_ADMIN_PASSWORD MLFLOW_AUTH_CONFIG_PATH; do
  [ -n "${!var:-}" ] || unset "$var"
done

need MLFLOW_BACKEND_STORE_URI "e.g. postgresql://mlflow@db.example.com:5432/mlflow"
need MLFLOW_ARTIFACTS_DESTINATION "e.g. s3://mlflow-artifacts/resbench"
host=${MLFLOW_HOST:-127.0.0.1}
port=${MLFLOW_PORT:-5000}
workers=${MLFLOW_WORKERS:-2}
auth=${MLFLOW_AUTH:-basic}

args=(server
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI"
  --serve-artifacts
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION"
  --host "$host" --port "$port" --workers "$workers")

case "$auth" in
basic)
  need MLFLOW_FLASK_SERVER_SECRET_KEY "a long random string, e.g. from: openssl rand -hex 32"
  if [ -z "${MLFLOW_AUTH_CONFIG_PATH:-}" ]; then
    need MLFLOW_AUTH_DATABASE_URI "e.g. postgresql://mlflow@db.example.com:5432/mlflow_auth"
    MLFLOW_AUTH_CONFIG_PATH=$(mktemp "${TMPDIR:-/tmp}/mlflow-basic-auth.XXXXXX")
    # The admin password is not written here: MLflow reads MLFLOW_AUTH_ADMIN_PASSWORD itself.
    cat >"$MLFLOW_AUTH_CONFIG_PATH" <<EOF
[mlflow]
default_permission = ${MLFLOW_AUTH_DEFAULT_PERMISSION:-READ}
auth_cache_ttl_seconds = ${MLFLOW_AUTH_CACHE_TTL_SECONDS:-60}
database_uri = ${MLFLOW_AUTH_DATABASE_URI}
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
EOF
  fi
  export MLFLOW_AUTH_CONFIG_PATH
  args+=(--app-name basic-auth)
  ;;
none) ;;
*) die "MLFLOW_AUTH must be basic or none, got '$auth'" ;;
esac

echo "server.sh: mlflow server on $host:$port, store $(mask "$MLFLOW_BACKEND_STORE_URI")," \
  "artifacts $MLFLOW_ARTIFACTS_DESTINATION${MLFLOW_S3_ENDPOINT_URL:+ via $MLFLOW_S3_ENDPOINT_URL}," \
  "auth $auth" >&2
exec "${MLFLOW:-mlflow}" "${args[@]}"
