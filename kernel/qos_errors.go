package kernel

import (
	"fmt"
	"net/netip"
)

// QoSRefusal says why SetQoS did not install a target; the controller
// counts refusals by it (a metric label and a counter in dmvpnctl).
type QoSRefusal string

// Why a target was refused.
const (
	// QoSInvalidTarget: the destination is not an IPv4 unicast address, or
	// the same destination was asked for twice with different policies.
	QoSInvalidTarget QoSRefusal = "invalid_target"
	// QoSInvalidPolicy: the policy is unknown or fails QoSPolicy.Validate.
	QoSInvalidPolicy QoSRefusal = "invalid_policy"
	// QoSNoRoute: no route to the destination, or it is a local address.
	QoSNoRoute QoSRefusal = "no_route"
	// QoSForeignQdisc: the egress device has a root qdisc dmvpnd did not
	// install (an administrator's); it is left alone.
	QoSForeignQdisc QoSRefusal = "foreign_qdisc"
	// QoSNoRoom: the device's handle space is full (QoSMaxTargets targets,
	// or too many targets sharing the last two octets); errors.Is(err,
	// ErrResourceExhausted).
	QoSNoRoom QoSRefusal = "no_room"
	// QoSKernel: the kernel refused an object; the target is retried at the
	// next SetQoS.
	QoSKernel QoSRefusal = "kernel"
)

// QoSError is one target SetQoS did not install (or could not remove).
type QoSError struct {
	Dst    netip.Addr
	Policy string
	Reason QoSRefusal
	Err    error
}

func (e QoSError) Error() string {
	return fmt.Sprintf("qos target %s policy %q: %s: %v", e.Dst, e.Policy, e.Reason, e.Err)
}

func (e QoSError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrResourceExhausted) true for QoSNoRoom.
func (e QoSError) Is(target error) bool {
	return target == ErrResourceExhausted && e.Reason == QoSNoRoom
}

// QoSErrors is SetQoS' result when some targets failed: every other target
// was installed, kept or removed.
type QoSErrors struct {
	Failed []QoSError
}

func (e *QoSErrors) Error() string { return refusedText("qos target(s)", e.Failed) }

// Unwrap returns the per-target errors.
func (e *QoSErrors) Unwrap() []error { return asErrors(e.Failed) }

func qosErrors(failed []QoSError) error {
	if len(failed) == 0 {
		return nil
	}
	return &QoSErrors{Failed: failed}
}
