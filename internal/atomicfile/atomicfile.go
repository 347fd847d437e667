// Package atomicfile replaces files so that readers see the old content or the new, never a mix,
// and a crash leaves one of the two on disk. It imports only the standard library (the CNI plugin
// links it through package subnet).
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write writes data with perm to a temporary file beside path, syncs it, renames it over path and
// syncs the directory, so the rename itself is durable. Missing directories are created.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
