// georeg in Azure: one Service Bus namespace (the replication topic with a subscription per replica
// region, the webhook delivery queue, the back-fill page queue), and per region a storage account (the registry's storage)
// and a Function App running the same package with REGION_NAME set; Application Insights for every
// app (traces and georeg's metrics through OpenTelemetry) and a workbook over Service Bus and georeg.
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

// A replica's back-fill, one page of home's tags per message (src/replicas/backfill.ts): the next
// page is sent with a deterministic id, so duplicate detection drops a page sent twice.
resource backfillQueue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: bus
  name: 'backfill-pages'
  properties: {
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    deadLetteringOnMessageExpiration: true
  }
}

// Where every Function App sends its traces and georeg's metrics (APPLICATIONINSIGHTS_CONNECTION_STRING
// turns on @azure/monitor-opentelemetry in georeg), and the Functions host its own logs.
resource logs 'Microsoft.OperationalInsights/workspaces@2022-10-01' = {
  name: '${prefix}-logs-${suffix}'
  location: homeRegion
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${prefix}-ai-${suffix}'
  location: homeRegion
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
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
        { name: 'GEOREG_BACKFILL_QUEUE', value: backfillQueue.name }
        { name: 'GEOREG_PUSH_SECRET', value: pushSecret }
        { name: 'GEOREG_RECONCILE_SCHEDULE', value: reconcileSchedule }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsights.properties.ConnectionString }
        { name: 'OTEL_SERVICE_NAME', value: 'georeg-${region}' }
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

// The operations workbook: Service Bus counts per entity (active, scheduled, dead-lettered; Azure
// Monitor has no per-subscription split, georeg's dashboard has it) and georeg's own metrics as the
// Azure Monitor exporter stores them (customMetrics: sum, count, max per interval).
func sbMetric(name string) object => {
  namespace: 'microsoft.servicebus/namespaces'
  metric: 'microsoft.servicebus/namespaces--${name}'
  aggregation: 4
  splitBy: 'EntityName'
}

func georegQuery(title string, query string, visualization string) object => {
  type: 3
  name: title
  content: {
    version: 'KqlItem/1.0'
    title: title
    query: query
    size: 0
    queryType: 0
    resourceType: 'microsoft.insights/components'
    visualization: visualization
    timeContext: { durationMs: 3600000 }
  }
}

var workbookContent = {
  version: 'Notebook/1.0'
  items: [
    {
      type: 1
      name: 'intro'
      content: { json: '## georeg operations\nService Bus entities of the replication pipeline, and georeg\'s own metrics. The live per-region view is the dashboard: `https://<home app>/api/dashboard?key=<function key>`.' }
    }
    {
      type: 10
      name: 'servicebus'
      content: {
        chartId: 'georeg-servicebus'
        version: 'MetricsItem/2.0'
        title: 'Service Bus: active, scheduled and dead-lettered messages per entity'
        size: 0
        chartType: 2
        resourceType: 'microsoft.servicebus/namespaces'
        metricScope: 0
        resourceIds: [ bus.id ]
        timeContext: { durationMs: 3600000 }
        metrics: [ sbMetric('ActiveMessages'), sbMetric('ScheduledMessages'), sbMetric('DeadletteredMessages') ]
      }
    }
    georegQuery('Push→ready per region (average and slowest, ms)', 'customMetrics | where name == "georeg.push_to_ready" | extend region = tostring(customDimensions.region) | summarize avg_ms = sum(valueSum) / sum(valueCount), max_ms = max(valueMax) by region, bin(timestamp, 5m)', 'timechart')
    georegQuery('Replication jobs by region and outcome', 'customMetrics | where name == "georeg.jobs" | extend region = tostring(customDimensions.region), outcome = tostring(customDimensions.outcome) | summarize jobs = sum(valueSum) by series = strcat(region, " ", outcome), bin(timestamp, 5m)', 'barchart')
    georegQuery('Bytes copied per region and method', 'customMetrics | where name == "georeg.bytes" and tostring(customDimensions.result) == "copied" | summarize bytes = sum(valueSum) by series = strcat(tostring(customDimensions.region), " ", tostring(customDimensions.method)), bin(timestamp, 5m)', 'timechart')
    georegQuery('Replica lag (seconds, oldest queued job)', 'customMetrics | where name == "georeg.replica.lag" | summarize lag_s = max(valueMax) by region = tostring(customDimensions.region), bin(timestamp, 5m)', 'timechart')
    georegQuery('Webhook deliveries by outcome', 'customMetrics | where name == "georeg.webhook.deliveries" | summarize deliveries = sum(valueSum) by series = strcat(tostring(customDimensions.webhook), " ", tostring(customDimensions.outcome)), bin(timestamp, 5m)', 'barchart')
    georegQuery('Failed and dead-lettered jobs (traces)', 'dependencies | union requests | where customDimensions["georeg.outcome"] in ("dead-letter", "abandoned") | project timestamp, name, outcome = tostring(customDimensions["georeg.outcome"]), reason = tostring(customDimensions["georeg.dead_letter.reason"]), operation_Id | order by timestamp desc | take 50', 'table')
  ]
}

resource workbook 'Microsoft.Insights/workbooks@2022-04-01' = {
  name: guid(resourceGroup().id, prefix, 'georeg-operations')
  location: homeRegion
  kind: 'shared'
  properties: {
    displayName: 'georeg operations'
    category: 'workbook'
    sourceId: appInsights.id
    serializedData: string(workbookContent)
  }
}

output dashboard string = 'https://${apps[0].properties.defaultHostName}/api/dashboard?key=<function key: az functionapp keys list -g ${resourceGroup().name} -n ${apps[0].name}>'
output applicationInsights string = appInsights.name
output pushEndpoint string = 'https://${apps[0].properties.defaultHostName}/api/push'
output serviceBusNamespace string = bus.name
output storageAccounts array = [for (region, i) in regions: { region: region, account: storage[i].name }]
