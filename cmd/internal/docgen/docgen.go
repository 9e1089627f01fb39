// Package docgen adds a hidden "__docs DIR" command to a cobra command tree.
// It writes the tree's man pages (section 8) and its bash and zsh
// completions; the package build (deploy/package) runs it on the built
// binaries, so the pages always describe the commands actually shipped.
// Dates come from SOURCE_DATE_EPOCH, so the output is reproducible.
package docgen

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// Command returns the hidden command; add it to root.
func Command(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "__docs DIR",
		Short:  "Write man pages and shell completions into DIR (packaging)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return Write(root, args[0])
		},
	}
}

// Write renders DIR/man8/*.8, DIR/bash/NAME and DIR/zsh/_NAME for root.
func Write(root *cobra.Command, dir string) error {
	name := root.Name()
	for _, d := range []string{"man8", "bash", "zsh"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("docgen: %w", err)
		}
	}
	root.DisableAutoGenTag = true
	hdr := &doc.GenManHeader{Section: "8", Manual: "dmvpnd manual", Source: "dmvpnd " + root.Version}
	if err := doc.GenManTree(root, hdr, filepath.Join(dir, "man8")); err != nil {
		return fmt.Errorf("docgen: man pages: %w", err)
	}
	if err := root.GenBashCompletionFileV2(filepath.Join(dir, "bash", name), true); err != nil {
		return fmt.Errorf("docgen: bash completion: %w", err)
	}
	if err := root.GenZshCompletionFile(filepath.Join(dir, "zsh", "_"+name)); err != nil {
		return fmt.Errorf("docgen: zsh completion: %w", err)
	}
	return nil
}
