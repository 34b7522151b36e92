// Package sandbox emulates the ATODENE deferred-payment API as an http.Handler, for development,
// demos, tests and benchmarks (docs/atodene.md#part-2-the-sandbox-internalsandbox-cmdatodene-sandbox;
// the protocol in docs/protocol.md). ATODENE itself is discontinued; this is what the worker and
// downstream services test against.
//
// # Operations
//
// The five operations are served at BasePath (/api/): transaction.do, getauthori.do,
// shippingrequest.do, modifytransaction.do and getinvoicedata.do. Each takes POST with a raw UTF-8
// XML body whatever its Content-Type, with a <request> root; empty elements may be written <x></x>
// or <x/>. Each answers HTTP 200 with a <response> whose result is OK (with the operation's
// transactionInfo or invoiceInfo) or NG (with errors/error{errorPoint, errorCode, errorMessage}).
//
// A request is checked in this order, and the first failing stage is the whole answer:
//
//  1. the body parses as a <request> document (else errorPoint request);
//  2. linkInfo matches a configured shop (else shopCode, linkId or linkPassword);
//  3. for calls naming a transaction, it exists for that shop (else transactionId, er000002) and is
//     not cancelled (else transactionId, er000033);
//  4. every field passes atodene.CheckField, with all failures reported together, plus the
//     operation's own rules (detail row count, Σ detail = billedAmount, duplicate shopOrderId,
//     authorization lifetime, shipment sequence, invoice eligibility).
//
// The error codes are invented, except er000033; ErrorCodes lists them.
//
// # Decisions
//
// Decisions are deterministic, by the local part of the buyer's e-mail (case-insensitive prefix,
// first match wins): ng → NG; review-ok → 審査中, then manual OK after Config.ReviewDelay;
// review-ng → 審査中, then manual NG; hold → 審査中, then manual 保留 after the review delay and NG
// after a further Config.HoldDelay; slow → like the default, but every response about it waits
// Config.SlowDelay; anything else → OK, or NG when billedAmount exceeds 55000. Reviews advance
// lazily from Config.Now, so tests move a clock rather than sleep.
//
// A shopOrderId with a live (neither cancelled nor NG) transaction cannot be registered again
// (er000101); after a cancel or an NG it can, and gets a new transaction ID. A change
// (updateTypeFlag 2) re-screens with the same rules, restarting any review, unless nothing but the
// addresses changed: then autoAuthoriresult is empty and the decision stands.
//
// With Config.AuthorizationLifetime set, an authorization expires that long after the last OK
// decision (an automatic OK at registration or change, or a review turning OK): from then on a
// shipment report (deliveryType 1 or 2) and a change are refused with er000102 on transactionId,
// while a cancel, a shipment cancel, getauthori.do and getinvoicedata.do still work.
//
// # Faults
//
// PUT /sandbox/faults injects faults into the five operations, drawn per request from a random source
// seeded by Config.Seed:
//
//   - latency_ms, jitter_ms: every request first waits latency_ms ± a uniform jitter_ms;
//   - error_rate: HTTP 500, and the request is not processed;
//   - timeout_rate: the request is processed, but no answer is ever sent: the handler holds it until
//     the client gives up or Server.Close is called, then drops the connection. The client cannot
//     know whether the request took effect; the admin API shows that it did;
//   - garbage_rate: the request is processed and answered HTTP 200 with a malformed XML body.
//
// A request gets at most one of the last three, so their rates add up to at most 1.
//
// # Admin API
//
// JSON, for tests and demos:
//
//   - GET /sandbox/transactions?shopOrderId=X: the transactions of that order (all without the
//     parameter), as an array of TransactionView;
//   - POST /sandbox/transactions/{id}/decision with {"result": "OK"|"NG"|"保留"}: decide a review
//     now (409 unless the transaction is under review and not cancelled);
//   - GET /sandbox/stats: calls per operation and per HTTP status (Stats);
//   - GET and PUT /sandbox/faults: the current faults (Faults);
//   - POST /sandbox/reset: forget transactions, stats and faults.
package sandbox
