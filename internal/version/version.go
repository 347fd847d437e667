// Package version holds the version weft's binaries report (weftd -version, weftctl version).
package version

// Version is set at build time: go build -ldflags "-X github.com/weft-net/weft/internal/version.Version=v1.2.3".
var Version = "dev"
