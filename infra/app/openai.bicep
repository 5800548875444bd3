// A new Azure OpenAI account reachable only with Entra ID (local auth disabled, custom subdomain)
// and one GlobalBatch model deployment. Not deployed when an existing account is given.
@description('Name of the account; also its custom subdomain (<name>.openai.azure.com).')
param name string

@description('Region of the account; it must offer Global Batch for the model.')
param location string

@description('Tags applied to the account.')
param tags object = {}

@description('Name of the GlobalBatch deployment.')
param deploymentName string

@description('Model name, e.g. gpt-4o-mini.')
param modelName string

@description('Model version, e.g. 2024-07-18.')
param modelVersion string

@minValue(1)
@description('SKU capacity of the deployment.')
param capacity int

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  name: name
  location: location
  tags: tags
  kind: 'OpenAI'
  sku: {
    name: 'S0'
  }
  // System-assigned: blob batch mode reads inputs and writes outputs in our storage with it
  // (the service does not support a user-assigned identity for that).
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
    }
  }
}

resource batchDeployment 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: deploymentName
  sku: {
    name: 'GlobalBatch'
    capacity: capacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: modelName
      version: modelVersion
    }
    versionUpgradeOption: 'OnceNewDefaultVersionAvailable'
  }
}

output name string = account.name
output endpoint string = account.properties.endpoint
output deploymentName string = batchDeployment.name
