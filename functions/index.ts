// The Functions host loads this file (package.json "main"); each module registers its triggers.
import './push';
import './status';
import './replicate';
import './webhooks';
import './deliver';
import './replications';
import './reconcile';
