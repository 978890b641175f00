import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';

/**
 * A region's registry container as any other client of the account sees it: what a test reads or
 * plants beside georeg's RegionStorage (raw link bytes, blob types, a foreign blob, a full listing).
 */
export function rawContainer(connectionString: string, container = 'registry'): ContainerClient {
  return BlobServiceClient.fromConnectionString(connectionString).getContainerClient(container);
}
