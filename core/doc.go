// Package core holds the chacc core's domain types: the error type with its
// codes, and the views of module state that the HTTP layer renders. The
// subpackages implement the host: archive intake (archive), storage (store),
// module processes (runtime), lifecycle and routing (modules), the event bus
// (events), the HTTP surface (httpapi) and the wiring (server).
package core
