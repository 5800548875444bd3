// Deployed into the resource group (and subscription) of the Azure OpenAI account, new or existing:
// Cognitive Services OpenAI User for the app identity on that account only, and its endpoint.
// File-upload batch mode needs nothing from the account's own identity; blob mode needs its
// system-assigned identity, whose principal id is an output here (empty when it has none).
@description('Name of the Azure OpenAI account in this resource group.')
param accountName string

@description('Principal id of the function app\'s user-assigned identity.')
param principalId string

// Cognitive Services OpenAI User: inference, files and batches on the data plane; no keys, no management.
var cognitiveServicesOpenAiUser = '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: accountName
}

resource openAiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, cognitiveServicesOpenAiUser)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cognitiveServicesOpenAiUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// https://<subdomain>.openai.azure.com/ (the app strips the trailing slash).
output endpoint string = account.properties.endpoint

// The account's system-assigned identity (blob batch mode grants it storage roles). An existing
// account without one gives '': enable it first (docs/deploy.md) or use batchMode 'files'.
output principalId string = account.?identity.?principalId ?? ''
