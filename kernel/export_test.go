package kernel

// Exported for the external test package (privileged_contract_test.go),
// which imports kerneltest and so cannot be package kernel.
var (
	SingleNodeForTest = singleNode
	NewKernelForTest  = newKernel
)
