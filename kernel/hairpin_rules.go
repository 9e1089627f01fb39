package kernel

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Hairpin trigger defaults: FRR's documented rule logs at most 4 packets per
// minute per flow with a burst of 1 and a 128-byte snap length.
const (
	DefaultHairpinTable   = "dmvpnd"
	DefaultHairpinGroup   = 1
	DefaultHairpinSnaplen = 128
	DefaultHairpinRate    = 4
	DefaultHairpinPer     = time.Minute
	DefaultHairpinBurst   = 1
	// DefaultHairpinFlowTimeout expires idle flows from the rate-limit set.
	DefaultHairpinFlowTimeout = 2 * time.Minute
	// DefaultHairpinFlows bounds the rate-limit set; new flows beyond it are
	// not logged until old ones expire.
	DefaultHairpinFlows = 65536
)

const (
	hairpinChain = "forward"
	hairpinSet   = "flows"
)

// HairpinConfig configures the hub hairpin trigger: an nftables table of our
// own, family ip, whose forward chain logs packets entering and leaving the
// tunnel to NFLOG, at most Rate per Per for each (saddr, daddr) flow.
//
// The equivalent nft ruleset (for Rate 4, Per minute, Burst 1, group 1):
//
//	table ip dmvpnd {
//	  set flows { type ipv4_addr . ipv4_addr; size 65536; flags dynamic,timeout; timeout 2m; }
//	  chain forward {
//	    type filter hook forward priority filter; policy accept;
//	    iif IFINDEX oif IFINDEX update @flows { ip saddr . ip daddr limit rate 4/minute burst 1 packets }
//	      log group 1 snaplen 128 queue-threshold 1
//	  }
//	}
type HairpinConfig struct {
	// NetNS is an open network namespace fd (0: current).
	NetNS int
	// Table name; default DefaultHairpinTable.
	Table string
	// Group is the NFLOG group; default DefaultHairpinGroup.
	Group uint16
	// Snaplen is the number of packet bytes logged; default 128.
	Snaplen uint32
	// Rate packets per Per (second, minute, hour or day) per flow, plus Burst.
	Rate  uint64
	Per   time.Duration
	Burst uint32
	// FlowTimeout and MaxFlows bound the per-flow state.
	FlowTimeout time.Duration
	MaxFlows    uint32
}

func (c HairpinConfig) withDefaults() HairpinConfig {
	c.Table = cmp.Or(c.Table, DefaultHairpinTable)
	c.Group = cmp.Or(c.Group, DefaultHairpinGroup)
	c.Snaplen = cmp.Or(c.Snaplen, DefaultHairpinSnaplen)
	c.Rate = cmp.Or(c.Rate, DefaultHairpinRate)
	c.Per = cmp.Or(c.Per, DefaultHairpinPer)
	c.Burst = cmp.Or(c.Burst, DefaultHairpinBurst)
	c.FlowTimeout = cmp.Or(c.FlowTimeout, DefaultHairpinFlowTimeout)
	c.MaxFlows = cmp.Or(c.MaxFlows, DefaultHairpinFlows)
	return c
}

func limitUnit(per time.Duration) (expr.LimitTime, error) {
	switch per {
	case time.Second:
		return expr.LimitTimeSecond, nil
	case time.Minute:
		return expr.LimitTimeMinute, nil
	case time.Hour:
		return expr.LimitTimeHour, nil
	case 24 * time.Hour:
		return expr.LimitTimeDay, nil
	}
	return 0, fmt.Errorf("rate unit %s is not one of 1s, 1m, 1h, 24h", per)
}

// hairpinObjects is the table, set and chain of the trigger.
type hairpinObjects struct {
	table *nftables.Table
	set   *nftables.Set
	chain *nftables.Chain
}

func newHairpinObjects(c HairpinConfig) hairpinObjects {
	t := &nftables.Table{Name: c.Table, Family: nftables.TableFamilyIPv4}
	policy := nftables.ChainPolicyAccept
	return hairpinObjects{
		table: t,
		set: &nftables.Set{
			Table: t,
			// The set ID only has to be unique within the batch; fixing it
			// keeps the batch bytes reproducible.
			ID:            1,
			Name:          hairpinSet,
			KeyType:       nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr),
			Concatenation: true,
			Dynamic:       true,
			HasTimeout:    true,
			Timeout:       c.FlowTimeout,
			Size:          c.MaxFlows,
		},
		chain: &nftables.Chain{
			Name:     hairpinChain,
			Table:    t,
			Type:     nftables.ChainTypeFilter,
			Hooknum:  nftables.ChainHookForward,
			Priority: nftables.ChainPriorityFilter,
			Policy:   &policy,
		},
	}
}

// hairpinExprs is the rule: iif == tunnel, oif == tunnel, per-flow limit
// through the dynamic set, log to NFLOG. The per-rule queue threshold of 1
// makes the kernel flush each logged packet at once (default batching holds
// it for about a second).
func hairpinExprs(c HairpinConfig, ifindex int, setName string, setID uint32) ([]expr.Any, error) {
	if ifindex <= 0 {
		return nil, fmt.Errorf("invalid tunnel ifindex %d", ifindex)
	}
	unit, err := limitUnit(c.Per)
	if err != nil {
		return nil, err
	}
	if c.Burst == 0 || c.Rate == 0 {
		return nil, errors.New("rate and burst must be positive")
	}
	idx := binaryutil.NativeEndian.PutUint32(uint32(ifindex))
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIF, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: idx},
		&expr.Meta{Key: expr.MetaKeyOIF, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: idx},
		// ip saddr . ip daddr into registers 1 and 9 (32-bit halves of reg 1 and 2).
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Dynset{
			SrcRegKey: 1,
			SetName:   setName,
			SetID:     setID,
			Operation: uint32(unix.NFT_DYNSET_OP_UPDATE),
			Exprs: []expr.Any{
				&expr.Limit{Type: expr.LimitTypePkts, Rate: c.Rate, Unit: unit, Burst: c.Burst},
			},
		},
		&expr.Log{
			Key:        1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_SNAPLEN | 1<<unix.NFTA_LOG_QTHRESHOLD,
			Group:      c.Group,
			Snaplen:    c.Snaplen,
			QThreshold: 1,
		},
	}, nil
}

// queueHairpinInstall appends the atomic replace to cc's batch: add (so that
// the delete cannot fail), delete, then create table, set, chain and rule.
func queueHairpinInstall(cc *nftables.Conn, c HairpinConfig, ifindex int) error {
	o := newHairpinObjects(c)
	cc.AddTable(o.table)
	cc.DelTable(o.table)
	cc.AddTable(o.table)
	if err := cc.AddSet(o.set, nil); err != nil {
		return err
	}
	cc.AddChain(o.chain)
	exprs, err := hairpinExprs(c, ifindex, o.set.Name, o.set.ID)
	if err != nil {
		return err
	}
	cc.AddRule(&nftables.Rule{Table: o.table, Chain: o.chain, Exprs: exprs})
	return nil
}

// queueHairpinRemove appends an idempotent delete of the table.
func queueHairpinRemove(cc *nftables.Conn, c HairpinConfig) {
	t := &nftables.Table{Name: c.Table, Family: nftables.TableFamilyIPv4}
	cc.AddTable(t)
	cc.DelTable(t)
}
