// Package finops is the HTTP client that the recurring-integration source
// (dequeue) and the package-export source (exporter) share: OAuth2 client
// credentials against Microsoft Entra ID, throttling (429/503 with
// Retry-After), transient-failure retries with capped exponential backoff,
// FinOps OData error bodies, streamed downloads with integrity checks, and
// redaction of secrets in URLs.
//
// This is the one place that retries calls to FinOps: callers make one
// logical call and get either a result or an error that says why it failed.
package finops
