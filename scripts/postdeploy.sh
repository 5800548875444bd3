#!/bin/sh
# azd postdeploy hook (Linux, macOS): wire BlobCreated events of the input container to the deployed
# `on_blob_created` Event Grid trigger.
#
# Why a hook: the subscription's webhook needs the app's `eventgrid_extension` system key, which exists
# only after the code is deployed and the host has indexed the function. This hook waits for that,
# reads the key and deploys infra/eventgrid-subscription.bicep with it as a secure parameter (written
# to a private temp file, never echoed, never stored in the azd environment). Idempotent: every run
# updates the same subscription in place. Re-run by hand with `azd hooks run postdeploy`.
#
# Needs the Azure CLI signed in to the same tenant (`az login`); azd provides the environment
# values below (outputs of infra/main.bicep).
set -eu

FUNCTION_NAME="${EVENTGRID_FUNCTION_NAME:-on_blob_created}"
DEPLOYMENT_NAME="blob-created-subscription"
API_VERSION="2024-11-01"
WAIT_ATTEMPTS="${POSTDEPLOY_WAIT_ATTEMPTS:-40}"
WAIT_SECONDS="${POSTDEPLOY_WAIT_SECONDS:-15}"
ROOT=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
TEMPLATE="$ROOT/infra/eventgrid-subscription.bicep"

log() { printf 'postdeploy: %s\n' "$*"; }
fail() { printf 'postdeploy: error: %s\n' "$*" >&2; exit 1; }

for name in AZURE_SUBSCRIPTION_ID AZURE_RESOURCE_GROUP AZURE_FUNCTION_APP_NAME \
  EVENTGRID_SYSTEM_TOPIC_NAME AZURE_STORAGE_ACCOUNT_NAME INPUT_CONTAINER \
  EVENTGRID_DEADLETTER_CONTAINER; do
  eval "value=\${$name:-}"
  [ -n "$value" ] || fail "$name is not set: run 'azd provision' (or 'azd up') first"
done

command -v az >/dev/null 2>&1 || fail "the Azure CLI (az) is required: https://aka.ms/azure-cli"
az account show --only-show-errors --output none 2>/dev/null \
  || fail "the Azure CLI is not signed in: run 'az login' (same tenant as 'azd auth login')"

SITE="/subscriptions/$AZURE_SUBSCRIPTION_ID/resourceGroups/$AZURE_RESOURCE_GROUP/providers/Microsoft.Web/sites/$AZURE_FUNCTION_APP_NAME"

wake_host() {
  # A request to the app starts an instance on Flex Consumption, so the host loads the Event Grid
  # extension (which creates the key) and can answer Event Grid's validation handshake.
  if [ -n "${SERVICE_API_URI:-}" ] && command -v curl >/dev/null 2>&1; then
    curl --silent --output /dev/null --max-time 30 "$SERVICE_API_URI/" || true
  fi
}

# 1. The function must be indexed (Flex syncs triggers shortly after the deployment).
attempt=1
while :; do
  names=$(az rest --method get --url "$SITE/functions?api-version=$API_VERSION" \
    --query "value[].name" --output tsv --only-show-errors 2>/dev/null || true)
  if printf '%s\n' "$names" | grep -q "/$FUNCTION_NAME\$"; then
    break
  fi
  [ "$attempt" -lt "$WAIT_ATTEMPTS" ] \
    || fail "function '$FUNCTION_NAME' is not listed on $AZURE_FUNCTION_APP_NAME; check the deployment logs"
  log "waiting for function '$FUNCTION_NAME' to be indexed ($attempt/$WAIT_ATTEMPTS)"
  wake_host
  attempt=$((attempt + 1))
  sleep "$WAIT_SECONDS"
done

# 2. The eventgrid_extension system key (created when the host loads the Event Grid extension).
attempt=1
while :; do
  key=$(az rest --method post --url "$SITE/host/default/listkeys?api-version=$API_VERSION" \
    --query "systemKeys.eventgrid_extension" --output tsv --only-show-errors 2>/dev/null || true)
  [ -n "$key" ] && [ "$key" != "None" ] && break
  [ "$attempt" -lt "$WAIT_ATTEMPTS" ] \
    || fail "the eventgrid_extension system key of $AZURE_FUNCTION_APP_NAME did not appear"
  log "waiting for the eventgrid_extension system key ($attempt/$WAIT_ATTEMPTS)"
  wake_host
  attempt=$((attempt + 1))
  sleep "$WAIT_SECONDS"
done
case "$key" in
  *[!A-Za-z0-9_=+/-]*) fail "unexpected characters in the system key" ;;
esac

# 3. The key goes to a private parameters file, not to the command line (visible in `ps`).
umask 077
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT INT TERM
params="$workdir/secure.parameters.json"
printf '{"$schema":"https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#","contentVersion":"1.0.0.0","parameters":{"eventGridExtensionKey":{"value":"%s"}}}\n' "$key" >"$params"
unset key

# 4. Deploy the subscription. Event Grid validates the webhook on creation; a cold instance can miss
#    the handshake, so retry a few times.
attempt=1
while :; do
  log "deploying the BlobCreated subscription (attempt $attempt/3)"
  if az deployment group create \
    --subscription "$AZURE_SUBSCRIPTION_ID" \
    --resource-group "$AZURE_RESOURCE_GROUP" \
    --name "$DEPLOYMENT_NAME" \
    --template-file "$TEMPLATE" \
    --parameters "@$params" \
    --parameters \
    functionAppName="$AZURE_FUNCTION_APP_NAME" \
    functionName="$FUNCTION_NAME" \
    systemTopicName="$EVENTGRID_SYSTEM_TOPIC_NAME" \
    inputContainerName="$INPUT_CONTAINER" \
    deadLetterStorageAccountName="$AZURE_STORAGE_ACCOUNT_NAME" \
    deadLetterContainerName="$EVENTGRID_DEADLETTER_CONTAINER" \
    --only-show-errors --output none; then
    break
  fi
  [ "$attempt" -lt 3 ] || fail "could not create the Event Grid subscription (see the error above)"
  wake_host
  attempt=$((attempt + 1))
  sleep "$((WAIT_SECONDS * 2))"
done

log "BlobCreated events for $INPUT_CONTAINER/*.jsonl now start '$FUNCTION_NAME' on $AZURE_FUNCTION_APP_NAME"
