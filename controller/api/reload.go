package api

// ReloadRequest is the body of POST /v1/reload; an empty body re-reads
// and applies the daemon's configuration file.
type ReloadRequest struct {
	// DryRun computes the changes without applying them.
	DryRun bool `json:"dry_run,omitempty"`
	// Config, with DryRun, is a configuration file's content to compare
	// with the running configuration instead of the daemon's file.
	Config string `json:"config,omitempty"`
}

// Dispositions of a ConfigChange.
const (
	// DispositionLive: a reload applies the change.
	DispositionLive = "live"
	// DispositionRestart: the change waits for a restart of dmvpnd.
	DispositionRestart = "restart"
)

// ConfigChange is one changed configuration key.
type ConfigChange struct {
	// Key is the dotted key, with list indexes: nhrp.nhs[1].nbma.
	Key string `json:"key"`
	// Old and New are the values; empty for a secret or an unset key.
	Old string `json:"old,omitempty"`
	New string `json:"new,omitempty"`
	// Secret: only the fact that the value changed is shown.
	Secret bool `json:"secret,omitempty"`
	// Disposition is DispositionLive or DispositionRestart.
	Disposition string `json:"disposition"`
	// Reason says why a restart is needed.
	Reason string `json:"reason,omitempty"`
}

// ReloadResult is the reply to POST /v1/reload. A reload applies every
// live change and keeps the running value of every restart change (listed,
// never silently dropped); an invalid file is an error and changes nothing.
type ReloadResult struct {
	DryRun  bool           `json:"dry_run,omitempty"`
	Changes []ConfigChange `json:"changes"`
}

// Complete reports whether every change was (or would be) applied.
func (r ReloadResult) Complete() bool {
	for _, c := range r.Changes {
		if c.Disposition != DispositionLive {
			return false
		}
	}
	return true
}

// RunningConfig is the reply to GET /v1/config: the configuration in
// effect with defaults filled in and secrets redacted.
type RunningConfig struct {
	// YAML is the configuration as a file would spell it.
	YAML string `json:"yaml"`
	// Config is the same as a tree of objects.
	Config map[string]any `json:"config"`
	// Pending are the changes of the last file loaded that wait for a
	// restart.
	Pending []ConfigChange `json:"pending,omitempty"`
}
