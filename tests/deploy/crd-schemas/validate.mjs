// Validate custom resources against the schemas the @kubernetes-models packages publish
// (pinned in package.json). Reads a JSON array of objects on stdin; writes a JSON array with,
// for each object, null (valid) or the validator's message. An apiVersion/kind that no
// installed package covers is an error, never a pass.
const PACKAGES = {
  "keda.sh": "@kubernetes-models/keda",
  "gateway.networking.k8s.io": "@kubernetes-models/gateway-api",
  "cert-manager.io": "@kubernetes-models/cert-manager",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
  "autoscaling.k8s.io": "@kubernetes-models/autoscaler",
};

async function check(doc) {
  const [group] = String(doc.apiVersion).split("/");
  const pkg = PACKAGES[group];
  if (!pkg) return `no schema package for ${doc.apiVersion}`;
  let Model;
  try {
    ({ [doc.kind]: Model } = await import(`${pkg}/${doc.apiVersion}/${doc.kind}`));
  } catch {
    return `no schema for ${doc.apiVersion} ${doc.kind} in ${pkg}`;
  }
  try {
    new Model(doc).validate();
    return null;
  } catch (error) {
    return String(error.message);
  }
}

let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const doc of JSON.parse(input)) results.push(await check(doc));
process.stdout.write(JSON.stringify(results));
