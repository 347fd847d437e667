// Package daemon wires weftd together: the etcd lease, the VXLAN backend, gossip and the peer view,
// subnet.env, forwarding and masquerade rules, and the health, metrics and debug endpoints.
package daemon
