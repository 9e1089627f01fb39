// Package metrics holds dmvpnd's Prometheus metrics on a dedicated registry
// (never the global one) together with the Go runtime and process
// collectors, and serves them over HTTP.
//
// All names start with "dmvpnd_". Label values are fixed small sets (packet
// types, states, drop reasons, subsystems) so cardinality stays bounded.
// Two exceptions are labelled by peer, and bounded by only covering the
// peers concerned: the BGP neighbors with rejections or a teardown, and
// the per-tunnel QoS classes (dmvpnd_qos_class_*_total{peer,group,class},
// read from the kernel at scrape time) of the peers that have a policy,
// whose group and class labels are names from the node's own
// configuration (docs/qos.md).
package metrics
