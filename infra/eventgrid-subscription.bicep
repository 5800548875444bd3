// Second deployment, run by the azd postdeploy hook (scripts/postdeploy.sh|ps1) AFTER the code is
// deployed: the Event Grid subscription that delivers BlobCreated events for *.jsonl blobs in the
// input container to the `on_blob_created` Event Grid trigger. Its webhook carries the function
// app's `eventgrid_extension` system key, which exists only once the host has indexed the function;
// the hook reads it and passes it here as a secure parameter (never stored in azd's .env).
// Idempotent: re-running updates the same subscription in place.
targetScope = 'resourceGroup'

@description('Name of the function app (AZURE_FUNCTION_APP_NAME).')
param functionAppName string

@description('Name of the Event Grid trigger function in function_app.py.')
param functionName string = 'on_blob_created'

@secure()
@description('The function app\'s eventgrid_extension system key (host/default/listkeys); read by the postdeploy hook.')
param eventGridExtensionKey string

@description('Name of the data storage account\'s Event Grid system topic (EVENTGRID_SYSTEM_TOPIC_NAME).')
param systemTopicName string

@description('Container watched for *.jsonl files (INPUT_CONTAINER).')
param inputContainerName string = 'batch-input'

@description('Suffix of the blob names that start a run.')
param subjectSuffix string = '.jsonl'

@description('Name of the data storage account that holds the dead-letter container (AZURE_STORAGE_ACCOUNT_NAME).')
param deadLetterStorageAccountName string

@description('Container undeliverable events are written to (EVENTGRID_DEADLETTER_CONTAINER).')
param deadLetterContainerName string = 'eventgrid-deadletter'

@minValue(1)
@maxValue(30)
@description('Delivery attempts before an event is dead-lettered.')
param maxDeliveryAttempts int = 30

@minValue(1)
@maxValue(1440)
@description('Minutes Event Grid keeps retrying an event before it is dead-lettered.')
param eventTimeToLiveInMinutes int = 1440

@description('Name of the event subscription.')
param subscriptionName string = 'blob-created-to-function'

resource functionApp 'Microsoft.Web/sites@2024-11-01' existing = {
  name: functionAppName
}

resource deadLetterStorage 'Microsoft.Storage/storageAccounts@2024-01-01' existing = {
  name: deadLetterStorageAccountName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' existing = {
  name: systemTopicName
}

resource blobCreated 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: systemTopic
  name: subscriptionName
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${functionApp.properties.defaultHostName}/runtime/webhooks/eventgrid?functionName=${functionName}&code=${eventGridExtensionKey}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${inputContainerName}/blobs/'
      subjectEndsWith: subjectSuffix
      isSubjectCaseSensitive: false
      // On an account with a hierarchical namespace, CreateFile raises BlobCreated for an empty
      // file before its data is flushed; FlushWithClose follows with the content. Plain accounts
      // never send CreateFile, so the filter is harmless there.
      advancedFilters: [
        {
          operatorType: 'StringNotIn'
          key: 'data.api'
          values: [
            'CreateFile'
          ]
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    // The system topic's own identity writes dead letters (Storage Blob Data Contributor on this
    // container only, granted in infra/app/rbac.bicep); no storage keys or SAS.
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorage.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output eventSubscriptionName string = blobCreated.name
