// georeg in Azure: one Service Bus namespace (the replication topic with a subscription per replica
// region, the webhook delivery queue), and per region a storage account (the registry's storage)
// and a Function App running the same package with REGION_NAME set.
//
//   az deployment group create -g <rg> -f infra/main.bicep \
//     -p homeRegion=westus replicaRegions='["eastus","westeurope"]' pushSecret=<secret>
//
// Then deploy the package to every Function App (`npm run build && func azure functionapp publish <app>`).

@description('The region pushes arrive in (the registry writes here).')
param homeRegion string = resourceGroup().location

@description('Replica regions: each gets a storage account, a Function App and a subscription.')
param replicaRegions array = [ 'eastus', 'westeurope' ]

@description('Prefix of every resource name (lowercase letters and digits).')
@minLength(3)
@maxLength(11)
param prefix string = 'georeg'

@description('Secret the registry sends in its notification Authorization header.')
@secure()
@minLength(16)
param pushSecret string

@description('Optional: also asked of every admin API call (replications, webhooks, route) besides the function key.')
@secure()
param adminSecret string = ''

@description('How often each replica app compares its region\'s tags with home\'s and repairs drift (NCRONTAB, seconds first).')
param reconcileSchedule string = '0 */5 * * * *'

var regions = concat([ homeRegion ], replicaRegions)
var suffix = uniqueString(resourceGroup().id)

resource bus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: '${prefix}-${suffix}'
  location: homeRegion
  sku: { name: 'Standard', tier: 'Standard' }
}

resource topic 'Microsoft.ServiceBus/namespaces/topics@2022-10-01-preview' = {
  parent: bus
  name: 'replication'
  properties: {
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    defaultMessageTimeToLive: 'P14D'
    maxSizeInMegabytes: 1024
  }
}

resource subscriptions 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2022-10-01-preview' = [for region in replicaRegions: {
  parent: topic
  name: region
  properties: {
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    deadLetteringOnMessageExpiration: true
  }
}]

resource rules 'Microsoft.ServiceBus/namespaces/topics/subscriptions/rules@2022-10-01-preview' = [for (region, i) in replicaRegions: {
  parent: subscriptions[i]
  name: 'region'
  properties: {
    filterType: 'SqlFilter'
    sqlFilter: { sqlExpression: 'region = \'${region}\'' }
  }
}]

resource webhookQueue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: bus
  name: 'webhook-deliveries'
  properties: {
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-01-01' = [for region in regions: {
  name: take('${prefix}${region}${suffix}', 24)
  location: region
  sku: { name: 'Standard_LRS' }
  kind: 'StorageV2'
  properties: { minimumTlsVersion: 'TLS1_2', allowBlobPublicAccess: false }
}]

resource plans 'Microsoft.Web/serverfarms@2023-01-01' = [for region in regions: {
  name: '${prefix}-${region}-plan'
  location: region
  sku: { name: 'Y1', tier: 'Dynamic' }
  kind: 'functionapp'
  properties: { reserved: true }
}]

// Every app knows every region: the home app plans for all replicas, each replica copies from home.
var regionSettings = [for (region, i) in regions: {
  name: region
  connectionString: 'DefaultEndpointsProtocol=https;AccountName=${storage[i].name};AccountKey=${storage[i].listKeys().keys[0].value};EndpointSuffix=${environment().suffixes.storage}'
}]

resource apps 'Microsoft.Web/sites@2023-01-01' = [for (region, i) in regions: {
  name: '${prefix}-${region}-${suffix}'
  location: region
  kind: 'functionapp,linux'
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plans[i].id
    httpsOnly: true
    siteConfig: {
      linuxFxVersion: 'Node|20'
      appSettings: concat([
        { name: 'FUNCTIONS_EXTENSION_VERSION', value: '~4' }
        { name: 'FUNCTIONS_WORKER_RUNTIME', value: 'node' }
        { name: 'AzureWebJobsStorage', value: regionSettings[i].connectionString }
        { name: 'REGION_NAME', value: region }
        { name: 'GEOREG_HOME_REGION', value: homeRegion }
        { name: 'GEOREG_REGIONS', value: string(regionSettings) }
        { name: 'ServiceBusConnection__fullyQualifiedNamespace', value: '${bus.name}.servicebus.windows.net' }
        { name: 'GEOREG_REPLICATION_TOPIC', value: topic.name }
        { name: 'GEOREG_WEBHOOK_QUEUE', value: webhookQueue.name }
        { name: 'GEOREG_PUSH_SECRET', value: pushSecret }
        { name: 'GEOREG_RECONCILE_SCHEDULE', value: reconcileSchedule }
        // The home app only plans; replicas run the replicate trigger for their own subscription.
        { name: 'AzureWebJobs.replicate.Disabled', value: region == homeRegion ? 'true' : 'false' }
      ], empty(adminSecret) ? [] : [
        { name: 'GEOREG_ADMIN_SECRET', value: adminSecret }
      ])
    }
  }
}]

// Azure Service Bus Data Owner: send, receive and (for replica management) manage entities.
resource busRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (region, i) in regions: {
  name: guid(bus.id, apps[i].id, 'sb-data-owner')
  scope: bus
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '090c5cfd-751d-490a-894a-3ce6f1109419')
    principalId: apps[i].identity.principalId
    principalType: 'ServicePrincipal'
  }
}]

output pushEndpoint string = 'https://${apps[0].properties.defaultHostName}/api/push'
output serviceBusNamespace string = bus.name
output storageAccounts array = [for (region, i) in regions: { region: region, account: storage[i].name }]
