// The Functions host loads this file (package.json "main"); each module registers its triggers.
// The local host (src/local/host.ts) loads it too and serves exactly what is registered here.
import './push';
import './status';
import './replicate';
import './webhooks';
import './deliver';
import './deadletters';
import './replications';
import './reconcile';
import './backfill';
import './ops';
