//go:build race

package controller

// raceEnabled: GoBGP v3.37.0 races with itself when several servers run
// in one process (routing's skipGoBGPRaces), as the real-speaker tests do.
const raceEnabled = true
