# azd postdeploy hook (Windows, PowerShell 7): wire BlobCreated events of the input container to the
# deployed `on_blob_created` Event Grid trigger. Same steps as scripts/postdeploy.sh:
#
# The subscription's webhook needs the app's `eventgrid_extension` system key, which exists only after
# the code is deployed and the host has indexed the function. This hook waits for that, reads the key
# and deploys infra/eventgrid-subscription.bicep with it as a secure parameter (written to a private
# temp file, never echoed, never stored in the azd environment). Idempotent: every run updates the
# same subscription in place. Re-run by hand with `azd hooks run postdeploy`.
#
# Needs the Azure CLI signed in to the same tenant (`az login`); azd provides the environment values
# below (outputs of infra/main.bicep).
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$FunctionName = if ($env:EVENTGRID_FUNCTION_NAME) { $env:EVENTGRID_FUNCTION_NAME } else { 'on_blob_created' }
$DeploymentName = 'blob-created-subscription'
$ApiVersion = '2024-11-01'
$WaitAttempts = if ($env:POSTDEPLOY_WAIT_ATTEMPTS) { [int]$env:POSTDEPLOY_WAIT_ATTEMPTS } else { 40 }
$WaitSeconds = if ($env:POSTDEPLOY_WAIT_SECONDS) { [int]$env:POSTDEPLOY_WAIT_SECONDS } else { 15 }
$Root = Split-Path -Parent $PSScriptRoot
$Template = Join-Path $Root 'infra/eventgrid-subscription.bicep'

function Write-Log([string]$Message) { Write-Host "postdeploy: $Message" }
function Stop-Hook([string]$Message) { [Console]::Error.WriteLine("postdeploy: error: $Message"); exit 1 }

$required = @(
    'AZURE_SUBSCRIPTION_ID', 'AZURE_RESOURCE_GROUP', 'AZURE_FUNCTION_APP_NAME',
    'EVENTGRID_SYSTEM_TOPIC_NAME', 'AZURE_STORAGE_ACCOUNT_NAME', 'INPUT_CONTAINER',
    'EVENTGRID_DEADLETTER_CONTAINER'
)
foreach ($name in $required) {
    if (-not [Environment]::GetEnvironmentVariable($name)) {
        Stop-Hook "$name is not set: run 'azd provision' (or 'azd up') first"
    }
}

if (-not (Get-Command az -ErrorAction SilentlyContinue)) {
    Stop-Hook 'the Azure CLI (az) is required: https://aka.ms/azure-cli'
}
az account show --only-show-errors --output none 2>$null
if ($LASTEXITCODE -ne 0) {
    Stop-Hook "the Azure CLI is not signed in: run 'az login' (same tenant as 'azd auth login')"
}

$Site = "/subscriptions/$($env:AZURE_SUBSCRIPTION_ID)/resourceGroups/$($env:AZURE_RESOURCE_GROUP)/providers/Microsoft.Web/sites/$($env:AZURE_FUNCTION_APP_NAME)"

function Invoke-WakeHost {
    # A request to the app starts an instance on Flex Consumption, so the host loads the Event Grid
    # extension (which creates the key) and can answer Event Grid's validation handshake.
    if ($env:SERVICE_API_URI) {
        try { Invoke-WebRequest -Uri "$($env:SERVICE_API_URI)/" -TimeoutSec 30 -UseBasicParsing | Out-Null } catch { }
    }
}

# 1. The function must be indexed (Flex syncs triggers shortly after the deployment).
for ($attempt = 1; ; $attempt++) {
    $names = az rest --method get --url "$Site/functions?api-version=$ApiVersion" `
        --query 'value[].name' --output tsv --only-show-errors 2>$null
    if ($LASTEXITCODE -eq 0 -and ($names | Where-Object { $_.Trim() -like "*/$FunctionName" })) { break }
    if ($attempt -ge $WaitAttempts) {
        Stop-Hook "function '$FunctionName' is not listed on $($env:AZURE_FUNCTION_APP_NAME); check the deployment logs"
    }
    Write-Log "waiting for function '$FunctionName' to be indexed ($attempt/$WaitAttempts)"
    Invoke-WakeHost
    Start-Sleep -Seconds $WaitSeconds
}

# 2. The eventgrid_extension system key (created when the host loads the Event Grid extension).
$key = $null
for ($attempt = 1; ; $attempt++) {
    $key = az rest --method post --url "$Site/host/default/listkeys?api-version=$ApiVersion" `
        --query 'systemKeys.eventgrid_extension' --output tsv --only-show-errors 2>$null
    if ($LASTEXITCODE -eq 0 -and $key -and "$key".Trim() -and "$key".Trim() -ne 'None') { $key = "$key".Trim(); break }
    if ($attempt -ge $WaitAttempts) {
        Stop-Hook "the eventgrid_extension system key of $($env:AZURE_FUNCTION_APP_NAME) did not appear"
    }
    Write-Log "waiting for the eventgrid_extension system key ($attempt/$WaitAttempts)"
    Invoke-WakeHost
    Start-Sleep -Seconds $WaitSeconds
}
if ($key -notmatch '^[A-Za-z0-9_=+/-]+$') { Stop-Hook 'unexpected characters in the system key' }

# 3. The key goes to a private parameters file, not to the command line (visible in process lists).
$workDir = Join-Path ([IO.Path]::GetTempPath()) ("postdeploy-" + [Guid]::NewGuid().ToString('N'))
New-Item -ItemType Directory -Path $workDir | Out-Null
try {
    $params = Join-Path $workDir 'secure.parameters.json'
    @{
        '$schema'      = 'https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#'
        contentVersion = '1.0.0.0'
        parameters     = @{ eventGridExtensionKey = @{ value = $key } }
    } | ConvertTo-Json -Depth 5 | Set-Content -Path $params -Encoding utf8
    $key = $null

    # 4. Deploy the subscription. Event Grid validates the webhook on creation; a cold instance can
    #    miss the handshake, so retry a few times.
    for ($attempt = 1; ; $attempt++) {
        Write-Log "deploying the BlobCreated subscription (attempt $attempt/3)"
        az deployment group create `
            --subscription $env:AZURE_SUBSCRIPTION_ID `
            --resource-group $env:AZURE_RESOURCE_GROUP `
            --name $DeploymentName `
            --template-file $Template `
            --parameters "@$params" `
            --parameters `
            "functionAppName=$($env:AZURE_FUNCTION_APP_NAME)" `
            "functionName=$FunctionName" `
            "systemTopicName=$($env:EVENTGRID_SYSTEM_TOPIC_NAME)" `
            "inputContainerName=$($env:INPUT_CONTAINER)" `
            "deadLetterStorageAccountName=$($env:AZURE_STORAGE_ACCOUNT_NAME)" `
            "deadLetterContainerName=$($env:EVENTGRID_DEADLETTER_CONTAINER)" `
            --only-show-errors --output none
        if ($LASTEXITCODE -eq 0) { break }
        if ($attempt -ge 3) { Stop-Hook 'could not create the Event Grid subscription (see the error above)' }
        Invoke-WakeHost
        Start-Sleep -Seconds ($WaitSeconds * 2)
    }
}
finally {
    Remove-Item -Recurse -Force $workDir -ErrorAction SilentlyContinue
}

Write-Log "BlobCreated events for $($env:INPUT_CONTAINER)/*.jsonl now start '$FunctionName' on $($env:AZURE_FUNCTION_APP_NAME)"
