package lab

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Build compiles weftd, weftctl, the weft CNI plugin and portmap into dir, from the module whose
// root is moduleDir, for tests that run the real binaries.
func Build(moduleDir, dir string) error {
	builds := [][]string{
		{"build", "-o", dir + "/", "./cmd/weftd", "./cmd/weftctl", "./cmd/weft"},
		{"build", "-o", filepath.Join(dir, "portmap"), "github.com/containernetworking/plugins/plugins/meta/portmap"},
	}
	for _, args := range builds {
		cmd := exec.Command("go", args...)
		cmd.Dir = moduleDir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}
