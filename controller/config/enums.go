package config

// Role is the node's NHRP role.
type Role string

// Roles.
const (
	RoleHub   Role = "hub"
	RoleSpoke Role = "spoke"
)

// Registration selects the NHRP registration uniqueness.
type Registration string

// Registration modes.
const (
	RegistrationUnique   Registration = "unique"
	RegistrationNoUnique Registration = "no-unique"
)

// AuthMethod is the IKE authentication method.
type AuthMethod string

// Authentication methods.
const (
	AuthPSK  AuthMethod = "psk"
	AuthX509 AuthMethod = "x509"
)

// HubMode selects how a hub advertises spoke routes.
type HubMode string

// Hub modes.
const (
	HubReflect HubMode = "reflect"
	HubSummary HubMode = "summary"
)

// LogLevel is the minimum level logged.
type LogLevel string

// Log levels.
const (
	LogDebug LogLevel = "debug"
	LogInfo  LogLevel = "info"
	LogWarn  LogLevel = "warn"
	LogError LogLevel = "error"
)

// LogFormat is the log encoding.
type LogFormat string

// Log formats.
const (
	LogJSON    LogFormat = "json"
	LogConsole LogFormat = "console"
)
