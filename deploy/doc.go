// Package deploy holds no code: it is the home of the deployment artefacts
// (example configurations, the systemd unit, the Ansible role) and of the
// tests that keep them valid against the daemon's configuration schema.
package deploy
