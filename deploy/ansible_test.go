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

	tasks := roleTasks(t)
	var handlers []task
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
			if src, ok := m["src"].(string); ok && !strings.Contains(src, "{{") {
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
	// Files come from the role itself, never from outside it.
	if diff := cmp.Diff([]string{"dmvpnd.service"}, copies); diff != "" {
		t.Errorf("copies of role files (-want +got):\n%s", diff)
	}
	for _, c := range copies {
		if _, err := os.Stat(filepath.Join(roleDir, "files", c)); err != nil {
			t.Errorf("copy source %s: %v", c, err)
		}
	}
	if !validated {
		t.Error("no template task validates the configuration with dmvpnd --check")
	}

	for _, pb := range []string{"site.yml", "rollout.yml"} {
		var plays []map[string]any
		readYAML(t, filepath.Join("ansible", pb), &plays)
		for _, p := range plays {
			roles, _ := p["roles"].([]any) // rollout.yml's first play only reaches the hosts
			for _, r := range roles {
				if _, err := os.Stat(filepath.Join("ansible/roles", r.(string), "tasks/main.yml")); err != nil {
					t.Errorf("%s role %v: %v", pb, r, err)
				}
			}
		}
	}
}

// roleTasks returns every task of the role: tasks/*.yml, blocks flattened.
func roleTasks(t *testing.T) []task {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(roleDir, "tasks", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []task
	var flatten func([]any)
	flatten = func(ts []any) {
		for _, x := range ts {
			tk := x.(map[string]any)
			out = append(out, tk)
			for _, k := range []string{"block", "rescue", "always"} {
				if sub, ok := tk[k].([]any); ok {
					flatten(sub)
				}
			}
		}
	}
	for _, f := range files {
		var ts []any
		readYAML(t, f, &ts)
		flatten(ts)
	}
	return out
}

// TestRoleUnitIsTheProjects: the role's own unit (installed with bare
// binaries) is the one the package ships.
func TestRoleUnitIsTheProjects(t *testing.T) {
	want, err := os.ReadFile("systemd/dmvpnd.service")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(roleDir, "files/dmvpnd.service"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s/files/dmvpnd.service differs from systemd/dmvpnd.service (copy it) (-want +got):\n%s", roleDir, diff)
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

// TestRoleRendersValidConfig runs the role's secrets and config tasks
// with Ansible itself (connection local, paths under a temporary
// directory) for every example host: the template task's own validation
// (dmvpnd --check --no-secrets, as the example's secret files are not
// there) passes and the result loads.
func TestRoleRendersValidConfig(t *testing.T) {
	out := t.TempDir()
	runRole(t, "ansible/inventory.example.yml", out, "", `{"dmvpnd_validate_secrets": false}`)
	for h := range inventoryConfigs(t) {
		p := filepath.Join(out, h, "dmvpnd.yaml")
		b, _ := os.ReadFile(p)
		c, err := config.Load(p)
		if err != nil {
			t.Errorf("%s: rendered configuration does not validate:\n%v\n%s", h, err, b)
			continue
		}
		if !strings.HasPrefix(h, string(c.NHRP.Role)) {
			t.Errorf("%s rendered with role %s", h, c.NHRP.Role)
		}
		if c.Control.Group != "root" {
			t.Errorf("%s: control.group = %q, want dmvpnd_group (root here)", h, c.Control.Group)
		}
	}
	for _, pb := range []string{"site.yml", "rollout.yml"} {
		syntax := exec.Command("ansible-playbook", "--syntax-check", "-i", "ansible/inventory.example.yml", "ansible/"+pb)
		syntax.Env = append(os.Environ(), "ANSIBLE_ROLES_PATH=ansible/roles", "ANSIBLE_NOCOLOR=1")
		if b, err := syntax.CombinedOutput(); err != nil {
			t.Errorf("%s: syntax check: %v\n%s", pb, err, b)
		}
	}
}

// TestRoleVaultedSecrets: a PSK vaulted inline inside dmvpnd_config and a
// vaulted dmvpnd_psk reach dmvpnd decrypted (never as `!vault` text), the
// secret file with mode 0600, and the template's validation (with
// secrets) accepts the result.
func TestRoleVaultedSecrets(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "vault-pass")
	if err := os.WriteFile(pass, []byte("lab-vault-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const inline, fileKey = "inline-psk-0123456789abcdef", "file-psk-fedcba9876543210"
	vault := func(name, secret string) string {
		if _, err := exec.LookPath("ansible-vault"); err != nil {
			t.Skip("ansible-vault not installed")
		}
		cmd := exec.Command("ansible-vault", "encrypt_string", "--vault-password-file", pass, "--name", name, secret)
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("ansible-vault encrypt_string: %v", err)
		}
		return string(b)
	}
	indent := func(s, prefix string) string {
		return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
	}
	inv := `all:
  hosts:
    hub1:
      dmvpnd_config:
        tunnel: {key: 42, local_nbma: 192.0.2.1, address: 10.0.0.1/24}
        nhrp: {role: hub, network_id: 1, holding_time: 600s}
        ipsec:
          enabled: true
          auth:
            method: psk
` + indent(vault("psk", inline), "            ") + `
    spoke1:
      dmvpnd_config:
        tunnel: {key: 42, local_nbma: 198.51.100.11, address: 10.0.0.11/24}
        nhrp: {role: spoke, network_id: 1, nhs: [{nbma: 192.0.2.1, protocol: 10.0.0.1}]}
        ipsec:
          enabled: true
          auth: {method: psk, psk_file: "{{ dmvpnd_psk_file }}"}
` + indent(vault("dmvpnd_psk", fileKey), "      ") + "\n"
	invPath := filepath.Join(dir, "inventory.yml")
	if err := os.WriteFile(invPath, []byte(inv), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "hosts")
	runRole(t, invPath, out, pass)

	for h, want := range map[string]string{"hub1": inline, "spoke1": fileKey} {
		p := filepath.Join(out, h, "dmvpnd.yaml")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "vault") || strings.Contains(string(b), "ANSIBLE") {
			t.Errorf("%s: rendered configuration carries vault text:\n%s", h, b)
		}
		c, err := config.Load(p)
		if err != nil {
			t.Errorf("%s: %v\n%s", h, err, b)
			continue
		}
		if err := c.ReadSecretFiles(os.ReadFile); err != nil {
			t.Errorf("%s: %v", h, err)
			continue
		}
		if got := c.IPsec.Auth.PSK.Reveal(); got != want {
			t.Errorf("%s: dmvpnd reads PSK %q, want %q", h, got, want)
		}
	}
	st, err := os.Stat(filepath.Join(out, "spoke1", "ipsec.psk"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("ipsec.psk mode %v, want 0600", st.Mode().Perm())
	}
}

// runRole runs the role's secrets and config tasks on every host of inv
// with connection local, each host's files under out/HOST, validated by a
// dmvpnd built from this tree.
func runRole(t *testing.T, inv, out, vaultPass string, extra ...string) {
	t.Helper()
	ap, err := exec.LookPath("ansible-playbook")
	if err != nil {
		t.Skip("ansible-playbook not installed")
	}
	if os.Geteuid() != 0 {
		t.Skip("the role's files are owned by root: run as root")
	}
	bin := filepath.Join(t.TempDir(), "dmvpnd")
	build := exec.Command("go", "build", "-o", bin, "../cmd/dmvpnd")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	play := filepath.Join(t.TempDir(), "render.yml")
	err = os.WriteFile(play, []byte(`- hosts: all
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: dmvpnd
        tasks_from: "{{ item }}"
      loop: [secrets.yml, config.yml]
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	roles, _ := filepath.Abs("ansible/roles")
	args := []string{"-i", inv, play,
		"-e", "dmvpnd_config_dir=" + out + "/{{ inventory_hostname }}",
		"-e", "dmvpnd_binary=" + bin, "-e", "dmvpnd_group=root", "-e", `{"dmvpnd_service_enabled": false}`,
		"-e", "ansible_python_interpreter=/usr/bin/python3"}
	if vaultPass != "" {
		args = append(args, "--vault-password-file", vaultPass)
	}
	for _, e := range extra {
		args = append(args, "-e", e)
	}
	cmd := exec.Command(ap, args...)
	cmd.Env = append(os.Environ(), "ANSIBLE_ROLES_PATH="+roles, "ANSIBLE_NOCOLOR=1",
		"ANSIBLE_LOCALHOST_WARNING=false", "ANSIBLE_RETRY_FILES_ENABLED=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ansible-playbook: %v\n%s", err, b)
	}
}
