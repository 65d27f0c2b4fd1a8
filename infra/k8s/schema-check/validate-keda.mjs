// Validate KEDA objects (JSON array on argv[2]) against KEDA's published CRD schema, as compiled in
// @kubernetes-models/keda: types, formats, enums and required fields. Unknown fields are caught by
// the TypeScript excess-property check that backend/tests/deploy runs next to this.
import { readFileSync } from "node:fs";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1";

const kinds = { ScaledObject };
const docs = JSON.parse(readFileSync(process.argv[2], "utf8"));
let failed = 0;
for (const doc of docs) {
  const Model = kinds[doc.kind];
  if (!Model || doc.apiVersion !== "keda.sh/v1alpha1") {
    console.error(`unsupported object ${doc.apiVersion}/${doc.kind}`);
    failed++;
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(`ok ${doc.kind}/${doc.metadata.name}`);
  } catch (err) {
    console.error(`invalid ${doc.kind}/${doc.metadata?.name}: ${err.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
