// Validates ServiceMonitor objects against the Prometheus Operator CRD schema, as compiled into
// @kubernetes-models/prometheus-operator. Reads a JSON array of objects on stdin; prints one line
// per object ("ok NAME" or "invalid NAME: errors") and exits 1 if any is invalid.
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const objects = JSON.parse(Buffer.concat(chunks).toString("utf8"));

let failed = false;
for (const object of objects) {
  const name = object?.metadata?.name ?? "(unnamed)";
  try {
    new ServiceMonitor(object).validate();
    console.log(`ok ${name}`);
  } catch (error) {
    failed = true;
    console.log(`invalid ${name}: ${error.message}`);
  }
}
process.exit(failed ? 1 : 0);
