package docgen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestWrite(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	root := &cobra.Command{Use: "tool", Short: "A tool", Version: "1.2.3", Run: func(*cobra.Command, []string) {}}
	sub := &cobra.Command{Use: "show", Short: "Show things", Run: func(*cobra.Command, []string) {}}
	root.AddCommand(sub, Command(root))
	dir := t.TempDir()
	root.SetArgs([]string{"__docs", dir})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"man8/tool.8":      `.TH "TOOL" "8" "Nov 2023" "dmvpnd 1.2.3" "dmvpnd manual"`,
		"man8/tool-show.8": "Show things",
		"bash/tool":        "__start_tool",
		"zsh/_tool":        "#compdef tool",
	} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %q:\n%.400s", file, want, b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "man8", "tool-__docs.8")); err == nil {
		t.Error("the hidden command has a man page")
	}
	b, _ := os.ReadFile(filepath.Join(dir, "man8", "tool.8"))
	if strings.Contains(string(b), "Auto generated") {
		t.Error("man page carries cobra's generation tag")
	}
}
