// Package adapter is the runner: it loads the configuration, wires the
// sources, the converter, the store, the file server and the publisher
// together, schedules jobs, runs one job through source → convert → commit →
// ack, serves HTTP, and shuts everything down in reverse order.
package adapter
