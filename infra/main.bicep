// Azure OpenAI Global Batch runner: everything `azd provision` creates.
//
// Subscription scope, as azd templates are: the resource group is created here and every module is
// deployed into it (the role on an existing Azure OpenAI account may land in another resource group
// or subscription). The Event Grid subscription that delivers BlobCreated to the `on_blob_created`
// function is NOT here: its webhook needs the function's system key, which exists only once the code
// is deployed. The azd `postdeploy` hook (scripts/postdeploy.sh|ps1) deploys
// infra/eventgrid-subscription.bicep with that key. See the README's deployment section.
targetScope = 'subscription'

// ---------------------------------------------------------------------------------------------
// Parameters (azd fills them from infra/main.parameters.json and the azd environment)
// ---------------------------------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; used for the resource group name and to derive a unique token for resource names.')
param environmentName string

@minLength(1)
@description('Region of the resource group and every resource except, optionally, the Azure OpenAI account. Must offer the Flex Consumption plan.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Name of the resource group to create. Empty: rg-<environmentName>.')
param resourceGroupName string = ''

@description('Object id of the deploying user or service principal (azd sets AZURE_PRINCIPAL_ID). Gets write access to the input container and read access to the output and errors containers so `batchctl submit` works from a workstation. Empty: no access is granted.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
])
@description('Kind of principal principalId is: User for a person, ServicePrincipal for a CI identity.')
param principalType string = 'User'

@allowed([
  512
  2048
  4096
])
@description('Memory of each Flex Consumption instance, in MB.')
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
@description('Maximum number of Flex Consumption instances the app scales out to.')
param maximumInstanceCount int = 40

@description('Create the data storage account with a hierarchical namespace (ADLS Gen2). Sets STORAGE_HIERARCHICAL_NAMESPACE and BATCH_STORAGE__dfsServiceUri for the app.')
param storageHierarchicalNamespace bool = false

@description('Days deleted blobs and containers of the data account stay recoverable (soft delete). 0 disables soft delete.')
@minValue(0)
@maxValue(365)
param dataDeleteRetentionDays int = 7

@description('Container watched for *.jsonl files (INPUT_CONTAINER).')
param inputContainerName string = 'batch-input'

@description('Container run folders are written to (OUTPUT_CONTAINER).')
param outputContainerName string = 'batch-output'

@description('Container rejected inputs are moved to (ERROR_CONTAINER).')
param errorContainerName string = 'batch-errors'

@description('Container for chunks and intermediate files (WORK_CONTAINER).')
param workContainerName string = 'batch-work'

@description('Container the Azure OpenAI service writes its output folders to in blob batch mode (SERVICE_OUTPUT_CONTAINER); the app moves the outputs into the run folder.')
param serviceOutputContainerName string = 'batch-service-output'

@description('Container Event Grid dead-letters undeliverable BlobCreated events to.')
param deadLetterContainerName string = 'eventgrid-deadletter'

@description('Resource id of an existing Azure OpenAI (or AI Services) account to use instead of creating one: /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.CognitiveServices/accounts/<name>. It must have local auth usable by Entra ID (custom subdomain) and a GlobalBatch deployment. Empty: a new account and deployment are created.')
param openAiResourceId string = ''

@description('Region of a newly created Azure OpenAI account (Global Batch is not offered everywhere). Empty: same as location.')
param openAiLocation string = ''

@description('Model of the GlobalBatch deployment created in a new account.')
param openAiModelName string = 'gpt-4o-mini'

@description('Model version of the GlobalBatch deployment created in a new account.')
param openAiModelVersion string = '2024-07-18'

@description('Name of the GlobalBatch deployment created in a new account; input lines name it in body.model.')
param openAiDeploymentName string = 'gpt-4o-mini-batch'

@minValue(1)
@description('SKU capacity of the GlobalBatch deployment created in a new account. The enqueued-token quota itself is granted per subscription and region.')
param openAiDeploymentCapacity int = 50

@description('Comma-separated deployment names input files may use (AZURE_OPENAI_DEPLOYMENTS). Empty: the created deployment when a new account is created, any deployment with an existing account.')
param openAiAllowedDeployments string = ''

@allowed([
  'blob'
  'files'
])
@description('How batches reach Azure OpenAI (AZURE_OPENAI_BATCH_MODE). files: chunks are uploaded and outputs downloaded through the Files API. blob: the service reads each staged chunk and writes its outputs in the data account with its system-assigned identity (granted roles on two containers); the default; use files for an account the service cannot reach.')
param batchMode string = 'blob'

@description('Batches in flight at once across all runs (MAX_ACTIVE_BATCHES); 0: no limit.')
@minValue(0)
param maxActiveBatches int = 0

@description('Estimated tokens in flight per deployment (MAX_ENQUEUED_TOKENS); 0: no limit. Set it below the deployment\'s enqueued-token quota to queue runs instead of failing them.')
@minValue(0)
param maxEnqueuedTokens int = 0

@allowed([
  'AzureStorage'
  'DurableTaskScheduler'
])
@description('Durable Functions backend: AzureStorage (queues, tables and blobs of the host storage account) or DurableTaskScheduler (a managed scheduler and task hub, for more throughput; see docs/scale.md).')
param durableBackend string = 'AzureStorage'

@description('IP ranges (CIDR) allowed to reach the Durable Task Scheduler (only with durableBackend = DurableTaskScheduler). Must not be empty: an empty list denies all traffic.')
@minLength(1)
param durableTaskSchedulerIpAllowlist array = [
  '0.0.0.0/0'
]

@allowed([
  'Consumption'
  'Dedicated'
])
@description('Durable Task Scheduler SKU (only with durableBackend = DurableTaskScheduler).')
param durableTaskSchedulerSku string = 'Consumption'

@description('Table of the data account that indexes runs for the runs API (RUNS_TABLE).')
param runsTableName string = 'runs'

@description('Days Log Analytics keeps logs.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = '${abbrs.webSitesFunctions}${resourceToken}'
// Flex Consumption reads the deployment package from this container (in the host storage account).
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
var hostStorageAccountName = '${abbrs.storageStorageAccounts}host${resourceToken}'
var dataStorageAccountName = '${abbrs.storageStorageAccounts}data${resourceToken}'
var systemTopicName = '${abbrs.eventGridSystemTopics}${dataStorageAccountName}'
var useDurableTaskScheduler = durableBackend == 'DurableTaskScheduler'
// The task hub name the app uses: host.json's extensions.durableTask.hubName.
var taskHubName = loadJsonContent('../host.json').extensions.durableTask.hubName

var useExistingOpenAi = !empty(openAiResourceId)
// Only the branch that applies is evaluated, so an empty openAiResourceId is never split.
var openAiSubscriptionId = useExistingOpenAi ? split(openAiResourceId, '/')[2] : subscription().subscriptionId
var openAiResourceGroupName = useExistingOpenAi ? split(openAiResourceId, '/')[4] : rg.name
var openAiAccountName = useExistingOpenAi ? split(openAiResourceId, '/')[8] : '${abbrs.openAiAccounts}${resourceToken}'
var allowedDeployments = !empty(openAiAllowedDeployments) ? openAiAllowedDeployments : (useExistingOpenAi ? '' : openAiDeploymentName)

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

// The app's one identity: storage, Azure OpenAI, Application Insights and the deployment package.
module identity './core/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring './core/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
  }
}

// Host storage: AzureWebJobsStorage (Durable Functions task hub, host locks and secrets) and the
// Flex Consumption deployment package. The app identity has account-wide data roles here.
module hostStorage './core/storage-account.bicep' = {
  name: 'host-storage'
  scope: rg
  params: {
    name: hostStorageAccountName
    location: location
    tags: tags
    containers: [
      deploymentContainerName
    ]
    isHnsEnabled: false
    deleteRetentionDays: 0
  }
}

// Data storage: the containers the app reads and writes, and the Event Grid source. The app
// identity only has roles on its four containers here.
module dataStorage './core/storage-account.bicep' = {
  name: 'data-storage'
  scope: rg
  params: {
    name: dataStorageAccountName
    location: location
    tags: tags
    containers: [
      inputContainerName
      outputContainerName
      errorContainerName
      workContainerName
      serviceOutputContainerName
      deadLetterContainerName
    ]
    tables: [
      runsTableName
    ]
    isHnsEnabled: storageHierarchicalNamespace
    deleteRetentionDays: dataDeleteRetentionDays
    deadLetterContainerName: deadLetterContainerName
  }
}

module eventGridTopic './app/eventgrid-topic.bicep' = {
  name: 'eventgrid-topic'
  scope: rg
  params: {
    name: systemTopicName
    location: location
    tags: tags
    storageAccountName: dataStorage.outputs.name
  }
}

module openAi './app/openai.bicep' = if (!useExistingOpenAi) {
  name: 'openai'
  scope: rg
  params: {
    name: openAiAccountName
    location: !empty(openAiLocation) ? openAiLocation : location
    tags: tags
    deploymentName: openAiDeploymentName
    modelName: openAiModelName
    modelVersion: openAiModelVersion
    capacity: openAiDeploymentCapacity
  }
}

// Cognitive Services OpenAI User for the app identity, on the new or the existing account (whose
// resource group and subscription may differ from ours), and the account's endpoint.
module openAiAccess './app/openai-access.bicep' = {
  name: 'openai-access'
  scope: resourceGroup(openAiSubscriptionId, openAiResourceGroupName)
  params: {
    accountName: openAiAccountName
    principalId: identity.outputs.principalId
  }
  dependsOn: [
    openAi
  ]
}

module rbac './app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    appPrincipalId: identity.outputs.principalId
    hostStorageAccountName: hostStorage.outputs.name
    dataStorageAccountName: dataStorage.outputs.name
    inputContainerName: inputContainerName
    outputContainerName: outputContainerName
    errorContainerName: errorContainerName
    workContainerName: workContainerName
    runsTableName: runsTableName
    deadLetterContainerName: deadLetterContainerName
    systemTopicPrincipalId: eventGridTopic.outputs.principalId
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
}

// Blob batch mode: the Azure OpenAI account's system identity reads the work container and writes
// the service-output container; the app reads and cleans that container. Nothing in files mode.
module openAiStorage './app/openai-storage.bicep' = if (batchMode == 'blob') {
  name: 'openai-storage'
  scope: rg
  params: {
    dataStorageAccountName: dataStorage.outputs.name
    workContainerName: workContainerName
    serviceOutputContainerName: serviceOutputContainerName
    openAiPrincipalId: openAiAccess.outputs.principalId
    appPrincipalId: identity.outputs.principalId
  }
}

// The scale-out Durable backend, only when selected.
module durableTaskScheduler './app/durable-task-scheduler.bicep' = if (useDurableTaskScheduler) {
  name: 'durable-task-scheduler'
  scope: rg
  params: {
    name: '${abbrs.durableTaskSchedulers}${resourceToken}'
    location: location
    tags: tags
    taskHubName: taskHubName
    appPrincipalId: identity.outputs.principalId
    ipAllowlist: durableTaskSchedulerIpAllowlist
    skuName: durableTaskSchedulerSku
  }
}

// Exactly the settings batching/settings.py reads (tests/test_infra.py checks the parity); every
// other setting takes the code's default. Identity-based storage, no keys, no AZURE_OPENAI_API_KEY.
var baseAppSettings = {
  AZURE_OPENAI_ENDPOINT: openAiAccess.outputs.endpoint
  AZURE_OPENAI_DEPLOYMENTS: allowedDeployments
  AZURE_CLIENT_ID: identity.outputs.clientId
  BATCH_STORAGE__blobServiceUri: dataStorage.outputs.blobEndpoint
  BATCH_STORAGE__credential: 'managedidentity'
  BATCH_STORAGE__clientId: identity.outputs.clientId
  STORAGE_HIERARCHICAL_NAMESPACE: storageHierarchicalNamespace ? 'true' : 'false'
  INPUT_CONTAINER: inputContainerName
  OUTPUT_CONTAINER: outputContainerName
  ERROR_CONTAINER: errorContainerName
  WORK_CONTAINER: workContainerName
  SERVICE_OUTPUT_CONTAINER: serviceOutputContainerName
  AZURE_OPENAI_BATCH_MODE: batchMode
  RUNS_TABLE: runsTableName
  BATCH_STORAGE__tableServiceUri: dataStorage.outputs.tableEndpoint
  POLL_INITIAL_SECONDS: '60'
  POLL_MAX_SECONDS: '600'
  // The reconciliation timer's schedule is a binding expression (%RECONCILE_SCHEDULE%): it must exist.
  RECONCILE_SCHEDULE: '0 */10 * * * *'
  MAX_ACTIVE_BATCHES: string(maxActiveBatches)
  MAX_ENQUEUED_TOKENS: string(maxEnqueuedTokens)
}
// Data Lake endpoint only when the data account has a hierarchical namespace.
var dataLakeAppSettings = storageHierarchicalNamespace ? { BATCH_STORAGE__dfsServiceUri: dataStorage.outputs.dfsEndpoint } : {}
// Durable Task Scheduler: host.json is one file for both backends, so its storage provider (and an
// extension bundle that carries the provider) is overridden by host settings, only in that mode:
// AzureFunctionsJobHost__<path>__<key> replaces host.json's <path>.<key>.
var durableAppSettings = useDurableTaskScheduler ? {
  DURABLE_TASK_SCHEDULER_CONNECTION_STRING: 'Endpoint=${durableTaskScheduler.outputs.endpoint};Authentication=ManagedIdentity;ClientID=${identity.outputs.clientId}'
  AzureFunctionsJobHost__extensions__durableTask__storageProvider__type: 'azureManaged'
  AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName: 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING'
  AzureFunctionsJobHost__extensionBundle__id: 'Microsoft.Azure.Functions.ExtensionBundle.Preview'
  AzureFunctionsJobHost__extensionBundle__version: '[4.29.0, 5.0.0)'
} : {}
var appSettings = union(baseAppSettings, dataLakeAppSettings, durableAppSettings)

module functionApp './app/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    serviceName: 'api'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    hostStorageAccountName: hostStorage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    appSettings: appSettings
  }
  // The host must be able to reach its storage and App Insights when it first starts.
  dependsOn: [
    rbac
    openAiStorage
  ]
}

// ---------------------------------------------------------------------------------------------
// Outputs: azd stores them in .azure/<env>/.env; the postdeploy hook and batchctl read them.
// ---------------------------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_SUBSCRIPTION_ID string = subscription().subscriptionId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICE_API_NAME string = functionApp.outputs.name
output SERVICE_API_URI string = functionApp.outputs.uri
output AZURE_USER_ASSIGNED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_STORAGE_ACCOUNT_NAME string = dataStorage.outputs.name
output AZURE_HOST_STORAGE_ACCOUNT_NAME string = hostStorage.outputs.name
output BATCH_STORAGE__blobServiceUri string = dataStorage.outputs.blobEndpoint
output STORAGE_HIERARCHICAL_NAMESPACE string = storageHierarchicalNamespace ? 'true' : 'false'
output INPUT_CONTAINER string = inputContainerName
output OUTPUT_CONTAINER string = outputContainerName
output ERROR_CONTAINER string = errorContainerName
output WORK_CONTAINER string = workContainerName
output SERVICE_OUTPUT_CONTAINER string = serviceOutputContainerName
output AZURE_OPENAI_BATCH_MODE string = batchMode
output EVENTGRID_SYSTEM_TOPIC_NAME string = eventGridTopic.outputs.name
output EVENTGRID_DEADLETTER_CONTAINER string = deadLetterContainerName
output AZURE_OPENAI_ENDPOINT string = openAiAccess.outputs.endpoint
output AZURE_OPENAI_ACCOUNT_NAME string = openAiAccountName
output AZURE_OPENAI_DEPLOYMENTS string = allowedDeployments
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.applicationInsightsConnectionString
// For batchctl on a workstation (`azd env get-values`): the data account (az login identity) and
// the runs API (BATCHCTL_KEY, a function key, is not output: `az functionapp keys list`).
output DURABLE_BACKEND string = durableBackend
output BATCHCTL_ACCOUNT_URL string = dataStorage.outputs.blobEndpoint
output BATCHCTL_API string = '${functionApp.outputs.uri}/api'
