package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmvpnd/dmvpnd/controller/config"
)

// techShows are the commands whose output goes into the archive, each as
// text and as JSON.
var techShows = [][]string{
	{"status"},
	{"show", "dmvpn"},
	{"show", "dmvpn", "detail"},
	{"show", "nhrp", "cache"},
	{"show", "nhrp", "nhs"},
	{"show", "nhrp", "shortcuts"},
	{"show", "ipsec"},
	{"show", "bgp", "summary"},
	{"show", "counters"},
}

// techCommands is the kernel and charon state dmvpnctl collects itself.
var techCommands = []struct {
	file string
	argv []string
}{
	{"kernel/ip-link.txt", []string{"ip", "-d", "link", "show"}},
	{"kernel/ip-neigh.txt", []string{"ip", "neigh", "show"}},
	{"kernel/ip-route-proto-157.txt", []string{"ip", "route", "show", "proto", "157"}},
	{"kernel/ip-xfrm-state.txt", []string{"ip", "xfrm", "state"}},
	{"kernel/ip-xfrm-policy.txt", []string{"ip", "xfrm", "policy"}},
	{"kernel/nft-ruleset.txt", []string{"nft", "list", "ruleset"}},
	{"charon/swanctl-list-sas.txt", []string{"swanctl", "--list-sas"}},
}

// xfrmKey matches the key material ip xfrm state prints after an
// algorithm name.
var xfrmKey = regexp.MustCompile(`(?m)^(\s*(?:enc|auth|auth-trunc|aead|comp)\s+\S+\s+)0x[0-9a-fA-F]+`)

// stripXfrmKeys replaces the keys in ip xfrm state output.
func stripXfrmKeys(b []byte) []byte { return xfrmKey.ReplaceAll(b, []byte("${1}[redacted]")) }

func runCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

func newTechSupport(o *opts) *cobra.Command {
	var out, cfgPath string
	c := &cobra.Command{
		Use:   "tech-support",
		Short: "Write one archive for a bug report: config (redacted), every show, events, kernel and charon state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := o.now()
			if out == "" {
				out = "dmvpn-tech-support-" + now.UTC().Format("20060102T150405Z") + ".tar.gz"
			}
			files := collectTechSupport(cmd.Context(), o, cfgPath)
			data, err := writeArchive(files, now)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, data, 0o600); err != nil {
				return fmt.Errorf("tech-support: %w", err)
			}
			_, err = fmt.Fprintf(o.out, "Wrote %s (%d files)\n", out, len(files))
			return err
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "archive path (default dmvpn-tech-support-TIME.tar.gz)")
	c.Flags().StringVar(&cfgPath, "config", "/etc/dmvpnd/dmvpnd.yaml", "dmvpnd's configuration file (written redacted)")
	return c
}

type techFile struct {
	name string
	data []byte
}

// collectTechSupport gathers the archive's files. A part that fails is
// kept as its error text: a bundle from a broken node is the useful one.
func collectTechSupport(ctx context.Context, o *opts, cfgPath string) []techFile {
	var files []techFile
	add := func(name string, data []byte) { files = append(files, techFile{name, data}) }
	for _, args := range techShows {
		name := "show/" + strings.Join(args, "-")
		add(name+".txt", o.capture(args...))
		add(name+".json", o.capture(append(args, "--json")...))
	}
	func() {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		evs, err := o.api().RecentEvents(ctx)
		if err != nil {
			add("events-recent.json", []byte("error: "+err.Error()+"\n"))
			return
		}
		b, _ := json.MarshalIndent(evs, "", "  ")
		add("events-recent.json", append(b, '\n'))
	}()
	add("config-redacted.json", redactedConfig(cfgPath))
	command := o.command
	if command == nil {
		command = runCommand
	}
	for _, c := range techCommands {
		cctx, cancel := context.WithTimeout(ctx, requestTimeout)
		b, err := command(cctx, c.argv[0], c.argv[1:]...)
		cancel()
		if c.argv[1] == "xfrm" {
			b = stripXfrmKeys(b)
		}
		if err != nil {
			b = append(b, []byte(fmt.Sprintf("\nerror: %s: %v\n", strings.Join(c.argv, " "), err))...)
		}
		add(c.file, b)
	}
	return files
}

// capture runs one dmvpnctl command against the same socket and returns
// what it printed, errors included.
func (o *opts) capture(args ...string) []byte {
	var out, errOut bytes.Buffer
	e := o.env
	e.out, e.errOut = &out, &errOut
	run(e, append([]string{"--socket", o.socket}, args...))
	return append(out.Bytes(), errOut.Bytes()...)
}

// redactedConfig is the configuration as dmvpnd parses it, with every
// ipsec.Secret masked by its JSON form; the raw file never goes in.
func redactedConfig(path string) []byte {
	raw, err := os.ReadFile(path)
	if err != nil {
		return []byte("error: " + err.Error() + "\n")
	}
	cfg, err := config.Parse(raw)
	if err != nil {
		return []byte("error: the configuration does not parse, not included: " + err.Error() + "\n")
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return []byte("error: " + err.Error() + "\n")
	}
	return append(b, '\n')
}

func writeArchive(files []techFile, now time.Time) ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		h := &tar.Header{Name: "dmvpn-tech-support/" + f.name, Mode: 0o600, Size: int64(len(f.data)), ModTime: now}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tech-support: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("tech-support: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("tech-support: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("tech-support: %w", err)
	}
	return buf.Bytes(), nil
}
