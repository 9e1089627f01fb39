// Package metrics holds dmvpnd's Prometheus metrics on a dedicated registry
// (never the global one) together with the Go runtime and process
// collectors, and serves them over HTTP.
//
// All names start with "dmvpnd_". Label values are fixed small sets (packet
// types, states, drop reasons, subsystems) so cardinality stays bounded;
// nothing is labelled by peer address.
package metrics
