// The Event Grid system topic of the data storage account. Its system-assigned identity writes
// dead-lettered events (rbac.bicep grants it Storage Blob Data Contributor on the dead-letter
// container only). The BlobCreated subscription itself is infra/eventgrid-subscription.bicep,
// deployed by the postdeploy hook once the function's system key exists.
@description('Name of the system topic.')
param name string

@description('Region of the system topic (that of the storage account).')
param location string

@description('Tags applied to the system topic.')
param tags object = {}

@description('Name of the storage account whose events the topic publishes.')
param storageAccountName string

resource storageAccount 'Microsoft.Storage/storageAccounts@2024-01-01' existing = {
  name: storageAccountName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: storageAccount.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output name string = systemTopic.name
output principalId string = systemTopic.identity.principalId
