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
