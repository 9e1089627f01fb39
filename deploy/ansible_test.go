package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/dmvpnd/dmvpnd/controller/config"
)

const roleDir = "ansible/roles/dmvpnd"

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

type task = map[string]any

// module returns a task's module arguments, by FQCN or short name.
func module(tk task, name string) (map[string]any, bool) {
	for _, k := range []string{"ansible.builtin." + name, name} {
		if m, ok := tk[k].(map[string]any); ok {
			return m, true
		}
	}
	return nil, false
}

func TestRoleParsesAndReferencesExist(t *testing.T) {
	var yamls []string
	err := filepath.WalkDir("ansible", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) {
			yamls = append(yamls, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range yamls {
		var v any
		readYAML(t, p, &v)
	}

	var tasks, handlers []task
	readYAML(t, filepath.Join(roleDir, "tasks/main.yml"), &tasks)
	readYAML(t, filepath.Join(roleDir, "handlers/main.yml"), &handlers)
	handlerNames := map[string]bool{}
	for _, h := range handlers {
		handlerNames[h["name"].(string)] = true
	}
	var notified, templates, copies []string
	validated := false
	for _, tk := range tasks {
		if _, ok := tk["name"].(string); !ok {
			t.Errorf("task without a name: %v", tk)
		}
		switch n := tk["notify"].(type) {
		case string:
			notified = append(notified, n)
		case []any:
			for _, x := range n {
				notified = append(notified, x.(string))
			}
		}
		if m, ok := module(tk, "template"); ok {
			templates = append(templates, m["src"].(string))
			if v, _ := m["validate"].(string); strings.Contains(v, "--check") && strings.Contains(v, "%s") {
				validated = true
			}
		}
		if m, ok := module(tk, "copy"); ok {
			if src, ok := m["src"].(string); ok && strings.Contains(src, "role_path") {
				copies = append(copies, src)
			}
		}
	}
	for _, n := range notified {
		if !handlerNames[n] {
			t.Errorf("task notifies %q, which is not a handler", n)
		}
	}
	for _, tpl := range templates {
		if _, err := os.Stat(filepath.Join(roleDir, "templates", tpl)); err != nil {
			t.Errorf("template %s: %v", tpl, err)
		}
	}
	if diff := cmp.Diff([]string{"{{ role_path }}/../../../systemd/dmvpnd.service"}, copies); diff != "" {
		t.Errorf("role_path copies (-want +got):\n%s", diff)
	}
	for _, c := range copies {
		p := strings.Replace(c, "{{ role_path }}", roleDir, 1)
		if _, err := os.Stat(p); err != nil {
			t.Errorf("copy source %s: %v", c, err)
		}
	}
	if !validated {
		t.Error("no template task validates the configuration with dmvpnd --check")
	}

	var plays []map[string]any
	readYAML(t, "ansible/site.yml", &plays)
	for _, p := range plays {
		for _, r := range p["roles"].([]any) {
			if _, err := os.Stat(filepath.Join("ansible/roles", r.(string), "tasks/main.yml")); err != nil {
				t.Errorf("site.yml role %v: %v", r, err)
			}
		}
	}
}

// inventoryConfigs returns each example host's dmvpnd_config.
func inventoryConfigs(t *testing.T) map[string]any {
	var inv struct {
		All struct {
			Children map[string]struct {
				Hosts map[string]map[string]any `yaml:"hosts"`
			} `yaml:"children"`
		} `yaml:"all"`
	}
	readYAML(t, "ansible/inventory.example.yml", &inv)
	out := map[string]any{}
	for _, g := range inv.All.Children {
		for h, vars := range g.Hosts {
			out[h] = vars["dmvpnd_config"]
		}
	}
	return out
}

func TestInventoryConfigsValidate(t *testing.T) {
	cfgs := inventoryConfigs(t)
	var hosts []string
	for h, c := range cfgs {
		hosts = append(hosts, h)
		b, err := yaml.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := config.Parse(b); err != nil {
			t.Errorf("%s: dmvpnd_config does not validate:\n%v", h, err)
		}
	}
	sort.Strings(hosts)
	if diff := cmp.Diff([]string{"hub1", "spoke1"}, hosts); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
}

// TestRoleRendersValidConfig renders the role's template with Ansible itself
// for every example host and validates the result.
func TestRoleRendersValidConfig(t *testing.T) {
	ap, err := exec.LookPath("ansible-playbook")
	if err != nil {
		t.Skip("ansible-playbook not installed")
	}
	out := t.TempDir()
	tpl, _ := filepath.Abs(filepath.Join(roleDir, "templates/dmvpnd.yaml.j2"))
	play := filepath.Join(out, "render.yml")
	err = os.WriteFile(play, []byte(`- hosts: all
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.template:
        src: `+tpl+`
        dest: "`+out+`/{{ inventory_hostname }}.yaml"
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ap, "-i", "ansible/inventory.example.yml", play)
	cmd.Env = append(os.Environ(), "ANSIBLE_NOCOLOR=1", "ANSIBLE_LOCALHOST_WARNING=false", "ANSIBLE_RETRY_FILES_ENABLED=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ansible-playbook: %v\n%s", err, b)
	}
	for h := range inventoryConfigs(t) {
		c, err := config.Load(filepath.Join(out, h+".yaml"))
		if err != nil {
			b, _ := os.ReadFile(filepath.Join(out, h+".yaml"))
			t.Errorf("%s: rendered configuration does not validate:\n%v\n%s", h, err, b)
			continue
		}
		if !strings.HasPrefix(h, string(c.NHRP.Role)) {
			t.Errorf("%s rendered with role %s", h, c.NHRP.Role)
		}
	}
	syntax := exec.Command(ap, "--syntax-check", "-i", "ansible/inventory.example.yml", "ansible/site.yml")
	syntax.Env = append(os.Environ(), "ANSIBLE_ROLES_PATH=ansible/roles", "ANSIBLE_NOCOLOR=1")
	if b, err := syntax.CombinedOutput(); err != nil {
		t.Errorf("syntax check: %v\n%s", err, b)
	}
}
