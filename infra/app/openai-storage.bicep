// Blob ("bring your own storage") batch mode: the Azure OpenAI service reads each staged chunk
// and writes its results straight in the data account, with the account's SYSTEM-assigned
// identity (the service does not support a user-assigned one). Deployed only when
// batchMode = 'blob'. Least privilege, per container (a container is a valid role assignment
// scope: Microsoft.Storage/storageAccounts/blobServices/containers):
// - Azure OpenAI identity: Storage Blob Data Reader on the work container (the immutable chunk
//   copies the app stages; it never reads the users' input container) and Storage Blob Data
//   Contributor on the service-output container only (its {folder}/{GUID}/results.jsonl and
//   errors.jsonl). Write access stays off the chunks, so the service cannot modify an input.
// - app identity: Storage Blob Data Contributor on the service-output container (it streams the
//   outputs into the run folder in the output container, then deletes the service's folder).

@description('Name of the data storage account (in this resource group).')
param dataStorageAccountName string

@description('Work container holding the staged chunks the service reads (WORK_CONTAINER).')
param workContainerName string

@description('Container holding the service\'s output folders (SERVICE_OUTPUT_CONTAINER).')
param serviceOutputContainerName string

@description('Principal id of the Azure OpenAI account\'s system-assigned identity.')
param openAiPrincipalId string

@description('Principal id of the function app\'s user-assigned identity.')
param appPrincipalId string

// Built-in role definition ids (the same in every subscription and tenant).
var roles = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
}

resource dataStorage 'Microsoft.Storage/storageAccounts@2024-01-01' existing = {
  name: dataStorageAccountName
}

resource dataBlobService 'Microsoft.Storage/storageAccounts/blobServices@2024-01-01' existing = {
  parent: dataStorage
  name: 'default'
}

resource workContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2024-01-01' existing = {
  parent: dataBlobService
  name: workContainerName
}

resource serviceOutputContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2024-01-01' existing = {
  parent: dataBlobService
  name: serviceOutputContainerName
}

resource openAiWorkReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workContainer.id, openAiPrincipalId, roles.storageBlobDataReader)
  scope: workContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: openAiPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource openAiOutputContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(serviceOutputContainer.id, openAiPrincipalId, roles.storageBlobDataContributor)
  scope: serviceOutputContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: openAiPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appServiceOutputContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(serviceOutputContainer.id, appPrincipalId, roles.storageBlobDataContributor)
  scope: serviceOutputContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}
