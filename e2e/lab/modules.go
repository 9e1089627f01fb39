package lab

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// moduleDeps is a parsed modules.dep: module path (relative to
// /lib/modules/VERSION) -> the paths it depends on.
type moduleDeps struct {
	deps   map[string][]string
	byName map[string]string // "9pnet_virtio" -> "kernel/net/9p/9pnet_virtio.ko"
}

// moduleName turns "kernel/net/9p/9pnet_virtio.ko.xz" into "9pnet_virtio".
// Like modprobe, it treats '-' and '_' as the same character.
func moduleName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

func parseModulesDep(r io.Reader) (*moduleDeps, error) {
	md := &moduleDeps{deps: map[string][]string{}, byName: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		mod, rest, ok := strings.Cut(text, ":")
		if !ok || mod == "" {
			return nil, fmt.Errorf("lab: modules.dep line %d: missing ':'", line)
		}
		md.deps[mod] = strings.Fields(rest)
		md.byName[moduleName(mod)] = mod
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("lab: read modules.dep: %w", err)
	}
	return md, nil
}

// resolve returns the module files to load, in load order (dependencies
// first, each once), for the named modules.
func (md *moduleDeps) resolve(names ...string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	var visit func(p string, stack []string) error
	visit = func(p string, stack []string) error {
		if seen[p] {
			return nil
		}
		for _, s := range stack {
			if s == p {
				return fmt.Errorf("lab: module dependency cycle at %s", p)
			}
		}
		deps, ok := md.deps[p]
		if !ok {
			return fmt.Errorf("lab: module %s not in modules.dep", p)
		}
		// modules.dep lists the full closure, nearest last; loading
		// each dependency's own dependencies first keeps any order valid.
		for i := len(deps) - 1; i >= 0; i-- {
			if err := visit(deps[i], append(stack, p)); err != nil {
				return err
			}
		}
		seen[p] = true
		out = append(out, p)
		return nil
	}
	for _, n := range names {
		p, ok := md.byName[strings.ReplaceAll(n, "-", "_")]
		if !ok {
			return nil, fmt.Errorf("lab: module %q not found (built in or missing)", n)
		}
		if err := visit(p, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}
