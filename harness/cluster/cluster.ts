/**
 * The cluster's programs in a lab: the controller (API server) on the control-plane node and the
 * agent on every node. (Being built: see issue 4.)
 */
import type { Lab } from '../lab/lab.js';
import type { Progress } from '../docker/image.js';
import { LabError } from '../util/errors.js';

export async function startCluster(lab: Lab, progress: Progress): Promise<void> {
  void progress;
  throw new LabError(`lab ${lab.id}: running the controller and agents is not available yet; use a topology with "cluster: false"`);
}
