package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Build compiles weftd, weftctl, weft-demo, the weft CNI plugin and portmap into dir, from the module whose
// root is moduleDir, for tests that run the real binaries.
func Build(moduleDir, dir string) error {
	builds := []struct {
		env  []string
		args []string
	}{
		{nil, []string{"build", "-o", dir + "/", "./cmd/weftd", "./cmd/weftctl", "./cmd/weft-demo"}},
		// The CNI plugin runs once per pod operation: static, it starts faster.
		{[]string{"CGO_ENABLED=0"}, []string{"build", "-o", dir + "/", "./cmd/weft"}},
		{nil, []string{"build", "-o", filepath.Join(dir, "portmap"), "github.com/containernetworking/plugins/plugins/meta/portmap"}},
	}
	for _, b := range builds {
		args := b.args
		cmd := exec.Command("go", args...)
		cmd.Dir = moduleDir
		cmd.Env = append(os.Environ(), b.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}
