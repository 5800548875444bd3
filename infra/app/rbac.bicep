// Role assignments in the app's resource group, least privilege:
// - app identity, host storage account: blob + queue + table data contributor, account-wide (the
//   Functions host and Durable Functions create and use their own containers, queues and tables);
// - app identity, data storage account: blob data contributor on its four containers only, table
//   data contributor on the runs index table only;
// - app identity, Application Insights: Monitoring Metrics Publisher (Entra-authenticated telemetry);
// - Event Grid system topic identity: blob data contributor on the dead-letter container only;
// - deploying user (optional): contributor on the input container, reader on output and errors.
// The Azure OpenAI role is in openai-access.bicep (the account may live in another resource group).

@description('Principal id of the function app\'s user-assigned identity.')
param appPrincipalId string

@description('Name of the host storage account (AzureWebJobsStorage, deployment package).')
param hostStorageAccountName string

@description('Name of the data storage account (input, output, errors, work containers).')
param dataStorageAccountName string

@description('Input container (INPUT_CONTAINER).')
param inputContainerName string

@description('Output container (OUTPUT_CONTAINER).')
param outputContainerName string

@description('Errors container (ERROR_CONTAINER).')
param errorContainerName string

@description('Work container (WORK_CONTAINER).')
param workContainerName string

@description('Table of the data account that indexes runs (RUNS_TABLE).')
param runsTableName string

@description('Container Event Grid dead-letters to.')
param deadLetterContainerName string

@description('Principal id of the Event Grid system topic\'s system-assigned identity.')
param systemTopicPrincipalId string

@description('Name of the Application Insights resource.')
param applicationInsightsName string

@description('Object id of the deploying user or CI principal; empty: no user access.')
param userPrincipalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
])
@description('Kind of principal userPrincipalId is.')
param userPrincipalType string = 'User'

// Built-in role definition ids (the same in every subscription and tenant).
var roles = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

var grantUser = !empty(userPrincipalId)

resource hostStorage 'Microsoft.Storage/storageAccounts@2024-01-01' existing = {
  name: hostStorageAccountName
}

resource dataStorage 'Microsoft.Storage/storageAccounts@2024-01-01' existing = {
  name: dataStorageAccountName
}

resource dataBlobService 'Microsoft.Storage/storageAccounts/blobServices@2024-01-01' existing = {
  parent: dataStorage
  name: 'default'
}

resource inputContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2024-01-01' existing = {
  parent: dataBlobService
  name: inputContainerName
}

resource outputContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2024-01-01' existing = {
  parent: dataBlobService
  name: outputContainerName
}

resource errorContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2024-01-01' existing = {
  parent: dataBlobService
  name: errorContainerName
}

resource workContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2024-01-01' existing = {
  parent: dataBlobService
  name: workContainerName
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2024-01-01' existing = {
  parent: dataBlobService
  name: deadLetterContainerName
}

resource dataTableService 'Microsoft.Storage/storageAccounts/tableServices@2024-01-01' existing = {
  parent: dataStorage
  name: 'default'
}

resource runsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2024-01-01' existing = {
  parent: dataTableService
  name: runsTableName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// ---- app identity: host storage, account-wide -------------------------------------------------

resource appHostBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, appPrincipalId, roles.storageBlobDataContributor)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appHostQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, appPrincipalId, roles.storageQueueDataContributor)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appHostTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, appPrincipalId, roles.storageTableDataContributor)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ---- app identity: data storage, per container --------------------------------------------------

resource appInputBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(inputContainer.id, appPrincipalId, roles.storageBlobDataContributor)
  scope: inputContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appOutputBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(outputContainer.id, appPrincipalId, roles.storageBlobDataContributor)
  scope: outputContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appErrorBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(errorContainer.id, appPrincipalId, roles.storageBlobDataContributor)
  scope: errorContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appWorkBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workContainer.id, appPrincipalId, roles.storageBlobDataContributor)
  scope: workContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ---- app identity: data storage, the runs index table only ------------------------------------

resource appRunsTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(runsTable.id, appPrincipalId, roles.storageTableDataContributor)
  scope: runsTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ---- app identity: Application Insights ---------------------------------------------------------

resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ---- Event Grid system topic: dead-letter container ----------------------------------------------

resource topicDeadLetterBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, systemTopicPrincipalId, roles.storageBlobDataContributor)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: systemTopicPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ---- deploying user: submit inputs, read results -------------------------------------------------

resource userInputBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser) {
  name: guid(inputContainer.id, userPrincipalId, roles.storageBlobDataContributor)
  scope: inputContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

resource userOutputBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser) {
  name: guid(outputContainer.id, userPrincipalId, roles.storageBlobDataReader)
  scope: outputContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

resource userErrorBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser) {
  name: guid(errorContainer.id, userPrincipalId, roles.storageBlobDataReader)
  scope: errorContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}
