// A general-purpose v2 storage account reachable only with Entra ID (shared keys disabled),
// TLS 1.2, HTTPS only, no anonymous blob access, with the given private containers.
@description('Name of the storage account (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Region of the account.')
param location string

@description('Tags applied to the account.')
param tags object = {}

@description('Names of the private blob containers to create.')
param containers array = []

@description('Hierarchical namespace (ADLS Gen2). Cannot be changed after the account is created.')
param isHnsEnabled bool = false

@description('Days deleted blobs and containers stay recoverable; 0 disables soft delete.')
@minValue(0)
@maxValue(365)
param deleteRetentionDays int = 0

@description('Tables to create in the account (the runs index).')
param tables array = []

@description('A container whose blobs are deleted 30 days after creation (Event Grid dead letters). Empty: no lifecycle rule.')
param deadLetterContainerName string = ''

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
@description('Replication of the account.')
param skuName string = 'Standard_LRS'

resource account 'Microsoft.Storage/storageAccounts@2024-01-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    isHnsEnabled: isHnsEnabled
    publicNetworkAccess: 'Enabled'
    dnsEndpointType: 'Standard'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }

  resource blobService 'blobServices' = {
    name: 'default'
    properties: {
      deleteRetentionPolicy: {
        enabled: deleteRetentionDays > 0
        days: deleteRetentionDays > 0 ? deleteRetentionDays : null
      }
      containerDeleteRetentionPolicy: {
        enabled: deleteRetentionDays > 0
        days: deleteRetentionDays > 0 ? deleteRetentionDays : null
      }
    }

    resource container 'containers' = [
      for containerName in containers: {
        name: containerName
        properties: {
          publicAccess: 'None'
        }
      }
    ]
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2024-01-01' = if (!empty(tables)) {
  parent: account
  name: 'default'
}

resource table 'Microsoft.Storage/storageAccounts/tableServices/tables@2024-01-01' = [
  for tableName in tables: {
    parent: tableService
    name: tableName
  }
]

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2024-01-01' = if (!empty(deadLetterContainerName)) {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'expire-dead-letters'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${deadLetterContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterCreationGreaterThan: 30
                }
              }
            }
          }
        }
      ]
    }
  }
}

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
// Only meaningful with a hierarchical namespace; the dfs endpoint exists on every v2 account.
output dfsEndpoint string = account.properties.primaryEndpoints.dfs
