// Durable Task Scheduler: the scale-out Durable Functions backend (durableBackend =
// 'DurableTaskScheduler' in main.bicep). A scheduler, its task hub, and the Durable Task Data
// Contributor role for the app's user-assigned identity on that task hub only. The app reaches it
// with DURABLE_TASK_SCHEDULER_CONNECTION_STRING (identity-based, no key), set by main.bicep.

@description('Name of the scheduler.')
param name string

@description('Region of the scheduler.')
param location string

@description('Tags applied to the scheduler.')
param tags object = {}

@description('Name of the task hub; must equal the hub name the app uses (host.json extensions.durableTask.hubName).')
param taskHubName string

@description('Principal id of the function app\'s user-assigned identity.')
param appPrincipalId string

@description('IP ranges (CIDR) allowed to reach the scheduler. Must not be empty: an empty list denies all traffic. Flex Consumption has no fixed outbound addresses, so the default allows all; access still needs the Entra role below.')
@minLength(1)
param ipAllowlist array = [
  '0.0.0.0/0'
]

@allowed([
  'Consumption'
  'Dedicated'
])
@description('Scheduler SKU: Consumption (pay per action) or Dedicated (capacity units).')
param skuName string = 'Consumption'

@minValue(1)
@description('Capacity units of a Dedicated scheduler (ignored for Consumption).')
param skuCapacity int = 1

// Built-in role: Durable Task Data Contributor (the same id in every tenant).
var durableTaskDataContributor = '0ad04412-c4d5-4796-b79c-f76d14c8d402'

resource scheduler 'Microsoft.DurableTask/schedulers@2025-11-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    ipAllowlist: ipAllowlist
    sku: (skuName == 'Dedicated') ? {
      name: skuName
      capacity: skuCapacity
    } : {
      name: skuName
    }
  }
}

resource taskHub 'Microsoft.DurableTask/schedulers/taskHubs@2025-11-01' = {
  parent: scheduler
  name: taskHubName
  properties: {}
}

resource appTaskHubData 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(taskHub.id, appPrincipalId, durableTaskDataContributor)
  scope: taskHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', durableTaskDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output name string = scheduler.name
output endpoint string = scheduler.properties.endpoint
output taskHubName string = taskHub.name
