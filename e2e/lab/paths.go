package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// moduleRoot finds the directory holding go.mod, walking up from the
// working directory (go test runs in the package directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("lab: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// writeCached creates the cache file out atomically: fill writes its
// content into a temporary file in the same directory (and may check it
// there, by name), which is then made readable by all and renamed into
// place. A failure leaves no file behind.
func writeCached(out string, fill func(tmp *os.File) error) error {
	dir := filepath.Dir(out)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(out)+"-*.tmp")
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = fill(tmp)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("lab: %w", cerr)
	}
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}
