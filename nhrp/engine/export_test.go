package engine

// Bounds of the packets held for an SA, for the external tests.
const (
	SAWaitFor     = saWaitFor
	SAWaitPerNBMA = saWaitPerNBMA
	SAWaitPackets = saWaitPackets
)
