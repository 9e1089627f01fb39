package kernel

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// qosSim is an in-memory stand-in for the kernel's tc objects with the
// rules SetQoS depends on: a root replace or delete takes the whole tree
// along, replacing or deleting a qdisc takes its classes, their qdiscs and
// its filters along, a class belongs to the HTB qdisc of its major,
// deleting a class takes its leaf qdisc and is refused while it has
// children or filters point at it, an HTB qdisc cannot be changed in
// place, filters are added exclusively to a qdisc that exists, a link must
// name an existing table of the same qdisc. Stricter than the kernel (which
// takes the filter and classifies to nothing): a filter's class must
// belong to the qdisc the filter is on.
type qosSim struct {
	mu      sync.Mutex
	routes  map[netip.Prefix]int
	local   map[netip.Addr]bool
	qdiscs  map[simKey]netlink.Qdisc
	classes map[simKey]*netlink.HtbClass
	filters map[simFKey]*netlink.U32
	changes int
	fail    func(op string, handle uint32) error
}

type simKey struct {
	ifindex int
	handle  uint32
}

// simFKey names a filter: u32 handles are per qdisc.
type simFKey struct {
	ifindex        int
	parent, handle uint32
}

func newQoSSim() *qosSim {
	return &qosSim{
		routes: map[netip.Prefix]int{}, local: map[netip.Addr]bool{},
		qdiscs: map[simKey]netlink.Qdisc{}, classes: map[simKey]*netlink.HtbClass{}, filters: map[simFKey]*netlink.U32{},
	}
}

// addDevice gives ifindex the kernel's default root qdisc and a route.
func (s *qosSim) addDevice(ifindex int, route string) {
	s.qdiscs[simKey{ifindex, 0}] = &netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Parent: netlink.HANDLE_ROOT}, QdiscType: "noqueue"}
	s.routes[netip.MustParsePrefix(route)] = ifindex
}

// change makes the change op on handle h, under the lock: it is counted,
// fails when s.fail says so, and is otherwise made by apply.
func (s *qosSim) change(op string, h uint32, apply func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changes++
	if s.fail != nil {
		if err := s.fail(op, h); err != nil {
			return err
		}
	}
	return apply()
}

func (s *qosSim) QdiscList(link netlink.Link) ([]netlink.Qdisc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []netlink.Qdisc
	for k, q := range s.qdiscs {
		if link == nil || link.Attrs().Index == k.ifindex {
			out = append(out, q)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Attrs().Handle < out[j].Attrs().Handle })
	return out, nil
}

func (s *qosSim) ClassList(link netlink.Link, parent uint32) ([]netlink.Class, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []netlink.Class
	for k, c := range s.classes {
		if k.ifindex == link.Attrs().Index {
			cc := *c
			if cc.Parent == cc.Handle&0xffff0000 {
				cc.Parent = netlink.HANDLE_ROOT // as HTB dumps it
			}
			out = append(out, &cc)
		}
	}
	return out, nil
}

func (s *qosSim) FilterList(link netlink.Link, parent uint32) ([]netlink.Filter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []netlink.Filter
	for k, f := range s.filters {
		// Like vishvananda/netlink, which returns only nodes with a selector:
		// hash tables are left out.
		if k.ifindex == link.Attrs().Index && k.parent == parent && f.Divisor == 0 {
			out = append(out, f)
		}
	}
	return out, nil
}

func (s *qosSim) clearDev(ifindex int) {
	for k := range s.qdiscs {
		if k.ifindex == ifindex {
			delete(s.qdiscs, k)
		}
	}
	for k := range s.classes {
		if k.ifindex == ifindex {
			delete(s.classes, k)
		}
	}
	for k := range s.filters {
		if k.ifindex == ifindex {
			delete(s.filters, k)
		}
	}
}

// dropQdisc deletes a qdisc with its classes, their qdiscs and its filters.
func (s *qosSim) dropQdisc(ifindex int, handle uint32) {
	delete(s.qdiscs, simKey{ifindex, handle})
	for k := range s.classes {
		if k.ifindex == ifindex && k.handle&0xffff0000 == handle {
			s.dropLeaf(ifindex, k.handle)
			delete(s.classes, k)
		}
	}
	for k := range s.filters {
		if k.ifindex == ifindex && k.parent == handle {
			delete(s.filters, k)
		}
	}
}

// dropLeaf deletes the qdisc of class (if any).
func (s *qosSim) dropLeaf(ifindex int, class uint32) {
	for k, q := range s.qdiscs {
		if k.ifindex == ifindex && q.Attrs().Parent == class {
			s.dropQdisc(ifindex, k.handle)
		}
	}
}

func (s *qosSim) QdiscReplace(q netlink.Qdisc) error {
	a := q.Attrs()
	return s.change("qdisc", a.Handle, func() error {
		if a.Parent == netlink.HANDLE_ROOT {
			s.clearDev(a.LinkIndex)
			s.qdiscs[simKey{a.LinkIndex, a.Handle}] = q
			return nil
		}
		if _, ok := s.classes[simKey{a.LinkIndex, a.Parent}]; !ok {
			return syscall.ENOENT
		}
		if old, ok := s.qdiscs[simKey{a.LinkIndex, a.Handle}]; ok {
			switch {
			case old.Attrs().Parent != a.Parent:
				return syscall.EINVAL // a handle is unique on the device
			case old.Type() != q.Type():
				return syscall.EINVAL
			case q.Type() == "htb":
				return syscall.EINVAL // HTB has no change operation
			}
			if f, ok := old.(*netlink.FqCodel); ok && f.Flows != q.(*netlink.FqCodel).Flows {
				return syscall.EINVAL
			}
			s.qdiscs[simKey{a.LinkIndex, a.Handle}] = q
			return nil
		}
		s.dropLeaf(a.LinkIndex, a.Parent)
		s.qdiscs[simKey{a.LinkIndex, a.Handle}] = q
		return nil
	})
}

func (s *qosSim) QdiscDel(q netlink.Qdisc) error {
	a := q.Attrs()
	return s.change("del qdisc", a.Handle, func() error {
		if _, ok := s.qdiscs[simKey{a.LinkIndex, a.Handle}]; !ok {
			return syscall.ENOENT
		}
		if a.Parent == netlink.HANDLE_ROOT {
			s.clearDev(a.LinkIndex)
			s.qdiscs[simKey{a.LinkIndex, 0}] = &netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: a.LinkIndex, Parent: netlink.HANDLE_ROOT}, QdiscType: "noqueue"}
			return nil
		}
		s.dropQdisc(a.LinkIndex, a.Handle)
		return nil
	})
}

func (s *qosSim) ClassReplace(c netlink.Class) error {
	a := c.Attrs()
	return s.change("class", a.Handle, func() error {
		qd := a.Handle & 0xffff0000
		if q, ok := s.qdiscs[simKey{a.LinkIndex, qd}]; !ok || q.Type() != "htb" {
			return syscall.ENOENT
		}
		if _, ok := s.classes[simKey{a.LinkIndex, a.Parent}]; !ok && a.Parent != qd {
			return syscall.ENOENT
		}
		if a.Parent&0xffff0000 != qd {
			return syscall.EINVAL
		}
		hc := *c.(*netlink.HtbClass)
		s.classes[simKey{a.LinkIndex, a.Handle}] = &hc
		return nil
	})
}

func (s *qosSim) ClassDel(c netlink.Class) error {
	a := c.Attrs()
	return s.change("del class", a.Handle, func() error {
		key := simKey{a.LinkIndex, a.Handle}
		if _, ok := s.classes[key]; !ok {
			return syscall.ENOENT
		}
		for _, o := range s.classes {
			if o.Attrs().LinkIndex == a.LinkIndex && o.Attrs().Parent == a.Handle {
				return syscall.EBUSY
			}
		}
		for _, f := range s.filters {
			if f.LinkIndex == a.LinkIndex && f.ClassId == a.Handle {
				return syscall.EBUSY
			}
		}
		s.dropLeaf(a.LinkIndex, a.Handle)
		delete(s.classes, key)
		return nil
	})
}

func (s *qosSim) FilterAdd(f netlink.Filter) error {
	u := f.(*netlink.U32)
	return s.change("filter", u.Handle, func() error {
		if _, ok := s.qdiscs[simKey{u.LinkIndex, u.Parent}]; !ok {
			return syscall.ENOENT
		}
		key := simFKey{u.LinkIndex, u.Parent, u.Handle}
		if _, ok := s.filters[key]; ok {
			return syscall.EEXIST
		}
		if u.Link != 0 {
			if _, ok := s.filters[simFKey{u.LinkIndex, u.Parent, u.Link}]; !ok {
				return syscall.EINVAL
			}
		}
		if u.Divisor == 0 && u.Handle>>20 != qosRootHT {
			if _, ok := s.filters[simFKey{u.LinkIndex, u.Parent, u.Handle &^ 0xfffff}]; !ok {
				return syscall.EINVAL // no such table
			}
		}
		if u.ClassId != 0 && u.ClassId&0xffff0000 != u.Parent {
			return syscall.EINVAL // see qosSim
		}
		uc := *u
		s.filters[key] = &uc
		return nil
	})
}

func (s *qosSim) FilterDel(f netlink.Filter) error {
	a := f.Attrs()
	return s.change("del filter", a.Handle, func() error {
		key := simFKey{a.LinkIndex, a.Parent, a.Handle}
		if _, ok := s.filters[key]; !ok {
			return syscall.ENOENT
		}
		delete(s.filters, key)
		return nil
	})
}

func (s *qosSim) RouteGet(dst net.IP) ([]netlink.Route, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, _ := netip.AddrFromSlice(dst)
	a = a.Unmap()
	if s.local[a] {
		return []netlink.Route{{LinkIndex: 1, Type: unix.RTN_LOCAL}}, nil
	}
	best, idx := -1, 0
	for p, i := range s.routes {
		if p.Contains(a) && p.Bits() > best {
			best, idx = p.Bits(), i
		}
	}
	if best < 0 {
		return nil, syscall.ENETUNREACH
	}
	return []netlink.Route{{LinkIndex: idx, Type: unix.RTN_UNICAST}}, nil
}

// render prints the simulated tree as sorted tc-like lines.
func (s *qosSim) render() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var lines []string
	for k, q := range s.qdiscs {
		lines = append(lines, fmt.Sprintf("dev %d qdisc %s %s parent %s", k.ifindex, q.Type(), netlink.HandleStr(q.Attrs().Handle), netlink.HandleStr(q.Attrs().Parent)))
	}
	for k, c := range s.classes {
		lines = append(lines, fmt.Sprintf("dev %d class htb %s parent %s rate %d ceil %d prio %d", k.ifindex, netlink.HandleStr(k.handle), netlink.HandleStr(c.Parent), c.Rate*8, c.Ceil*8, c.Prio))
	}
	for k, f := range s.filters {
		line := fmt.Sprintf("dev %d filter %s u32 %08x", k.ifindex, netlink.HandleStr(k.parent), k.handle)
		if f.Divisor != 0 {
			line += fmt.Sprintf(" divisor %d", f.Divisor)
		}
		if f.Link != 0 {
			line += fmt.Sprintf(" link %x: hmask %08x", f.Link>>20, f.Sel.Hmask)
		}
		if dst, e, ok := parseQoSEntry(f); ok {
			line += fmt.Sprintf(" dst %s", dst)
			if e.dscp >= 0 {
				line += fmt.Sprintf(" dscp %d", e.dscp)
			}
			line += " flowid " + netlink.HandleStr(e.classid)
		}
		lines = append(lines, line)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

// ApplyQoS applies ops one by one, carrying on after a refusal, as the
// kernel does with a batch.
func (s *qosSim) ApplyQoS(ops []qosOp) []error {
	errs := make([]error, len(ops))
	for i, o := range ops {
		switch {
		case o.qdisc != nil && o.del:
			errs[i] = s.QdiscDel(o.qdisc)
		case o.qdisc != nil:
			errs[i] = s.QdiscReplace(o.qdisc)
		case o.class != nil && o.del:
			errs[i] = s.ClassDel(o.class)
		case o.class != nil:
			errs[i] = s.ClassReplace(o.class)
		case o.filter != nil && o.del:
			errs[i] = s.FilterDel(o.filter)
		case o.filter != nil:
			errs[i] = s.FilterAdd(o.filter)
		default:
			errs[i] = syscall.EINVAL
		}
	}
	return errs
}
