// Command weft is the CNI plugin that attaches pods to weft's node bridge. Container runtimes exec
// it with the CNI protocol; the logic lives in package cni.
//
// Build it static (CGO_ENABLED=0 go build ./cmd/weft): it is copied onto hosts whatever their libc,
// and dynamic linking adds milliseconds to every exec.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/weft-net/weft/cni"
)

func main() {
	skel.PluginMainFuncs(cni.Funcs(), cni.Versions, cni.About)
}
