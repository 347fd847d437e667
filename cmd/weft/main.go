// Command weft is the CNI plugin that attaches pods to weft's node bridge. Container runtimes exec
// it with the CNI protocol; the logic lives in package cni.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/weft-net/weft/cni"
)

func main() {
	skel.PluginMainFuncs(cni.Funcs(), cni.Versions, cni.About)
}
