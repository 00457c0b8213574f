// tessera offline verification, written from docs/PROTOCOL.md.
export { rootAnchor, parseCert, type Cert, CertRefused } from "./cert.js";
export { verifyTrustList, freshness, ListRefused, type TrustList } from "./trustlist.js";
export { verifyText, verifyEnvelope, type Result, type Outcome, type Colour } from "./badge.js";
export { textToEnvelope, envelopeToText } from "./text.js";
